"""One pass of the node's work, run here and now, in this process: what the worker's minute sweep does
(expire offers, make due what waits for nobody) and what the lane would find due (decide and accept
offers, settle accepts, deliver the outbox, start payouts, send and read transfers). For a node whose
worker is down."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand

from orders import payout_lane, tasks


class Command(BaseCommand):
    help = (
        "One pass in this process: expire, decide/accept, settle accepts, deliver the outbox, start payouts, "
        "send and read transfers."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        counts: Counter[str] = Counter(tasks.sweep())
        counts["lane_items"] = payout_lane.run_due_once()
        self.stdout.write(" ".join(f"{name}={value}" for name, value in counts.items()))
