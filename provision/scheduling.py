"""Run a django-q2 task later: a one-off schedule.

The cluster's scheduler looks at schedules about every 30 s, so "later" is at least that coarse; the
minute sweep (``orders.tasks.sweep``) is the safety net either way. Work that must happen to the second
(PSP reads, balance re-reads) is the payout lane's, which keeps its own times in the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django_q.models import Schedule


def run_at(func: str, *, name: str, when: datetime, **kwargs: Any) -> None:
    """Schedule ``func(**kwargs)`` once at ``when``; one pending schedule per ``name``."""
    Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": func,
            "kwargs": kwargs,
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": max(when, timezone.now()),
        },
    )
