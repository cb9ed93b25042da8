"""Settings of the node under benchmark: production settings plus the bench app and its floor URL.

``DJANGO_SETTINGS_MODULE=bench.settings``. Everything else comes from the environment exactly as in
production (``provision.settings.base``). With ``BENCH_STATS_DIR`` set, every process counts its queries,
writes and commits into that directory (``bench.counters``).
"""

from provision.settings.base import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
# The bench-only minimal insert view (POST /_bench/floor); off unless this setting is true.
BENCH_FLOOR = True
# The floor is throttled like /new_order: the same check per request, and the same ceiling (the default
# scope's 6000/min refused a third of the floor's requests at 64 clients).
THROTTLE_SCOPES = {**THROTTLE_SCOPES, "bench-floor": "new_order"}  # noqa: F405
