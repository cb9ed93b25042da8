"""Run a django-q2 task later.

``run_at``: a one-off schedule. The cluster's scheduler looks at schedules about every 30 s, so "later"
is at least that coarse; the minute sweep (``orders.tasks.sweep``) is the safety net either way.
``run_soon``: to the second, for retries that must not wait for the scheduler (a delayed row on the ORM
broker's queue; a one-off schedule where there is none).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone


def run_at(func: str, *, name: str, when: datetime, **kwargs: Any) -> None:
    """Schedule ``func(**kwargs)`` once at ``when``; one pending schedule per ``name``."""
    from django_q.models import Schedule

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


def run_soon(func: str, *, name: str, when: datetime, **kwargs: Any) -> None:
    """Run ``func(**kwargs)`` once at ``when``, to the second where the broker can hold a task until then.

    On the ORM broker: a queue row that no cluster takes before ``when`` (``provision.queue``). Where a
    task cannot wait in the queue (another broker, or django-q2's sync mode, where a queued task runs at
    once): a one-off schedule (``run_at``), as coarse as the scheduler. Unlike schedules, queued runs are
    not kept to one per ``name``: the caller bounds how many it queues.
    """
    from provision import queue

    if queue.orm_broker() and not queue.runs_inline():
        queue.enqueue(func, task_name=name, at=when, **kwargs)
    else:
        run_at(func, name=name, when=when, **kwargs)
