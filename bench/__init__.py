"""Benchmarks of the provision node (``make bench``; never part of ``make test``).

``python -m bench`` starts the node as production runs it (gunicorn web + django-q2 worker, sandbox PSP
answering at once, the project's aggregator simulator) on SQLite and on PostgreSQL and measures intake,
the minimal-insert floor, end to end, /tx_status and memory. See ``bench/run.py``.

The ``bench`` Django app (installed only by ``bench.settings``) adds the floor view and its model, and
counts queries and commits per process for the per-order figures.
"""
