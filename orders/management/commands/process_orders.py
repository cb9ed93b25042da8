"""One pass of the order pipeline, run here and now (the worker's minute sweep queues the same work)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.module_loading import import_string

from orders import services, tasks


class Command(BaseCommand):
    help = (
        "One pass of the pipeline in this process: expire, decide/accept, start payouts, check transfers, "
        "deliver the outbox."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        counts: Counter[str] = Counter(expired=services.order_expire_due(now=now))
        for task in tasks.due_work(now=now, received_late_after=timedelta(0)):
            import_string(task.func)(**task.kwargs)
            counts[task.func.rsplit(".", 1)[-1]] += 1
        self.stdout.write(" ".join(f"{name}={value}" for name, value in counts.items()))
