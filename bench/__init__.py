"""Benchmarks of the provision node (``make bench``; never part of ``make test``).

``python -m bench`` starts the node as deployed (gunicorn web; the worker: django-q2's cluster and the
payout lane) on SQLite and PostgreSQL, offers orders through the project's aggregator simulator with an
instant PSP (the sandbox) or a slow one (``devtools.psp_sim`` through the Lenco adapter), and prints
every figure against the product's targets. See ``bench/run.py``.
"""
