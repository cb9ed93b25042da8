"""manage.py worker: the default deployment's worker in one process tree.

django-q2's cluster (the timers: the sweep, purges, notifications; webhook bookkeeping) is started exactly
as ``manage.py qcluster`` starts it (its processes are forked from this one); this process then runs the
lane's threads (``manage.py payout_lane``: every accept, every PSP call, every delivery) until SIGTERM. One
interpreter image, loaded once and shared with every process forked from it, instead of a second one for
the lane: about 50 MB less on a 512 MB box (README, *Performance*). ``qcluster`` and ``payout_lane`` still
run apart where they are scaled separately (deploy/kubernetes).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from orders.payout_lane import PayoutLane

logger = logging.getLogger(__name__)

CLUSTER_CHECK_SECONDS = 1.0


class Command(BaseCommand):
    help = "Run the worker: django-q2's cluster (timers) and the lane (accepts, payouts), until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--threads", type=int, default=None, help="PSP calls in flight at once (PAYOUT_LANE_THREADS)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connections.close_all()  # nothing of this process's database sessions may be inherited by a fork
        call_command("qcluster")  # returns once the cluster runs; its SIGTERM handler is the way to stop it
        stop_cluster = signal.getsignal(signal.SIGTERM)
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            stop.set()  # the lane finishes the calls in flight, then the cluster is stopped

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        gc.freeze()  # what the cluster's processes inherited stays shared: this process never collects it
        cluster_died = threading.Event()
        threading.Thread(
            target=_watch_cluster, args=(stop, cluster_died), name="cluster-watch", daemon=True
        ).start()
        threads = options["threads"] or settings.PAYOUT_LANE_THREADS
        self.stdout.write(
            f"worker: django-q2 cluster, lane with {settings.ACCEPT_LANE_THREADS} accept threads and "
            f"{threads} payout threads"
        )
        PayoutLane.from_settings(threads=threads).run(stop)
        if callable(stop_cluster):
            stop_cluster(signal.SIGTERM, None)  # django-q2's own stop: finishes the tasks in hand
        if cluster_died.is_set():
            # A worker whose timers are gone must not look alive: exit non-zero and be restarted.
            raise CommandError("the django-q2 cluster stopped on its own; the worker exits to be restarted")
        self.stdout.write("worker stopped")


def _watch_cluster(stop: threading.Event, died: threading.Event) -> None:
    """Stop the lane too when the cluster's sentinel (this process's child) is gone."""
    while not stop.wait(CLUSTER_CHECK_SECONDS):
        if not multiprocessing.active_children():
            logger.error("worker.cluster_gone")
            died.set()
            stop.set()
