"""Create or update the worker's recurring schedules (idempotent; run at every start)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules the node needs."

    def handle(self, *args: Any, **options: Any) -> None:
        from django_q.models import Schedule

        wanted = {
            "sweep": ("orders.tasks.sweep", max(1, settings.ORDER_POLL_INTERVAL // 60)),
            "purge_used_signatures": ("orders.tasks.purge_used_signatures", 60),
            "purge_task_results": ("orders.tasks.purge_task_results", 60),
            "purge_webhook_events": ("psp.tasks.webhook_events_purge", 60),
            "notifications": ("provision.tasks.notifications_scan", 1),
        }
        # The balance sync is the payout lane's (a PSP call); a schedule left by an older version goes.
        Schedule.objects.filter(name="balances_sync").delete()
        for name, (func, minutes) in wanted.items():
            Schedule.objects.update_or_create(
                name=name,
                defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
            )
        # One pass now: offers left for staff under a policy changed since, or a staff accept cut off by a
        # restart, are handed to the lane without waiting for the first scheduled sweep.
        from django_q.tasks import async_task

        async_task("orders.tasks.sweep", task_name="sweep_at_start")
        self.stdout.write(f"schedules ready: {', '.join(sorted(wanted))}")
