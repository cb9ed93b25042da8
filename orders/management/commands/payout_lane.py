"""manage.py payout_lane: run the lane (every accept and every PSP call, many at once) until SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from orders.payout_lane import PayoutLane


class Command(BaseCommand):
    help = (
        "Run the lane: decide and accept offers, start due payouts, send and read transfers, deliver the "
        "outbox, sync PSP balances."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--threads", type=int, default=None, help="PSP calls in flight at once (PAYOUT_LANE_THREADS)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            stop.set()  # the loop finishes the calls in flight, then returns

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        threads = options["threads"] or settings.PAYOUT_LANE_THREADS
        self.stdout.write(
            f"lane: {settings.ACCEPT_LANE_THREADS} accept threads, {threads} payout threads, "
            f"PSPs {', '.join(settings.PSP)}"
        )
        PayoutLane.from_settings(threads=threads).run(stop)
        self.stdout.write("payout lane stopped")
