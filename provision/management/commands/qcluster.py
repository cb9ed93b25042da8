"""``manage.py qcluster``: django-q2's cluster, started with the loaded code moved out of the collector's way.

The cluster forks its sentinel, pusher, monitor and workers from this process after Django and the
project are loaded. Freezing the garbage collector's view of those objects first (``gc.freeze``) keeps the
children from writing to the pages they share with this process when they collect, so the loaded code
stays in memory once for the whole cluster instead of once per process (about 20 MB less PSS measured
by ``make bench`` for the default two workers). The modules the processes would import on their first
task are imported before that (``provision.warm``).
"""

from __future__ import annotations

import gc
from typing import Any

from django_q.management.commands.qcluster import Command as DjangoQClusterCommand

from provision.warm import warm_worker


class Command(DjangoQClusterCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        warm_worker()  # task modules, broker and PSP clients: imported once here, shared by every process
        gc.collect()
        gc.freeze()
        super().handle(*args, **options)
