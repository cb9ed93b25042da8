"""``manage.py qcluster``: django-q2's cluster, with this process as its sentinel (``provision.cluster``).

The cluster forks its pusher, monitor and workers from this process after Django and the project are
loaded. Freezing the garbage collector's view of those objects first (``gc.freeze``) keeps the children
from writing to the pages they share with this process when they collect, so the loaded code stays in
memory once for the whole cluster instead of once per process (about 20 MB less PSS measured by
``make bench`` for the default two workers). The modules the processes would import on their first task
are imported before that (``provision.warm``). ``--run-once`` keeps django-q2's own start-and-stop.
"""

from __future__ import annotations

import gc
import os
from typing import Any

from django.conf import settings
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand

from provision import cluster
from provision.warm import warm_worker


class Command(DjangoQClusterCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        warm_worker()  # task modules, broker and PSP clients: imported once here, shared by every process
        gc.collect()
        gc.freeze()
        if options.get("run_once"):
            super().handle(*args, **options)
            return
        settings.SECRET_KEY  # noqa: B018 - django-q2 signs tasks with it: fail here, not in the first task
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]  # as django-q2 names a cluster
        cluster.run()
