"""One pass of the node's work, run here and now, in this process: what the worker's minute sweep queues
(expire, decide/accept, settle accepts) and what the payout lane would find due (deliver the outbox,
start payouts, send and read transfers). For a node whose worker or payout lane is down."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.module_loading import import_string

from orders import payout_lane, services, tasks


class Command(BaseCommand):
    help = (
        "One pass in this process: expire, decide/accept, settle accepts, deliver the outbox, start payouts, "
        "send and read transfers."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        counts: Counter[str] = Counter(expired=services.order_expire_due(now=now))
        for task in tasks.due_work(now=now, received_late_after=timedelta(0)):
            import_string(task.func)(**task.kwargs)
            counts[task.func.rsplit(".", 1)[-1]] += 1
        counts["payout_lane_items"] = payout_lane.run_due_once()
        self.stdout.write(" ".join(f"{name}={value}" for name, value in counts.items()))
