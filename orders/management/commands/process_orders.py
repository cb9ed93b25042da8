"""One pass of the order pipeline, for cron-driven set-ups (the worker runs the same pass every minute)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orders import tasks


class Command(BaseCommand):
    help = (
        "One pass of the pipeline: expire, decide/accept, start payouts, check transfers, deliver the outbox."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        counts = tasks.sweep()
        self.stdout.write(" ".join(f"{name}={value}" for name, value in counts.items()))
