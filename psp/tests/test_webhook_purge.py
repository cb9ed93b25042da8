"""Webhook rows are kept for a documented retention, then purged by a scheduled task."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from psp import tasks
from psp.models import WebhookEvent
from psp.services import webhooks as webhook_services

pytestmark = pytest.mark.django_db


def event(event_id: str, *, received_at: datetime, valid: bool = True) -> WebhookEvent:
    row = WebhookEvent.objects.create(psp="sandbox", event_id=event_id, body="{}", signature_valid=valid)
    WebhookEvent.objects.filter(pk=row.pk).update(received_at=received_at)
    return row


def test_purge_removes_rows_older_than_their_retention_and_keeps_newer_ones(
    settings: Any, now: datetime
) -> None:
    settings.WEBHOOK_RETENTION_DAYS = 30
    settings.WEBHOOK_REFUSED_RETENTION_DAYS = 7
    event("old-valid", received_at=now - timedelta(days=31))
    event("recent-valid", received_at=now - timedelta(days=29))
    event("valid-older-than-refused-retention", received_at=now - timedelta(days=8))
    event("old-refused", received_at=now - timedelta(days=8), valid=False)
    event("recent-refused", received_at=now - timedelta(days=6), valid=False)

    deleted = webhook_services.webhook_events_purge(now=now)

    assert deleted == 2
    assert sorted(WebhookEvent.objects.values_list("event_id", flat=True)) == [
        "recent-refused",
        "recent-valid",
        "valid-older-than-refused-retention",
    ]


def test_purge_deletes_in_batches_until_nothing_is_left(settings: Any, now: datetime) -> None:
    settings.WEBHOOK_RETENTION_DAYS = 1
    for n in range(7):
        event(f"old-{n}", received_at=now - timedelta(days=2))
    event("new", received_at=now)

    deleted = webhook_services.webhook_events_purge(now=now, batch=3)

    assert deleted == 7
    assert list(WebhookEvent.objects.values_list("event_id", flat=True)) == ["new"]


def test_purge_task_calls_the_service(settings: Any) -> None:
    settings.WEBHOOK_RETENTION_DAYS = 1
    from django.utils import timezone

    event("old", received_at=timezone.now() - timedelta(days=2))

    assert tasks.webhook_events_purge() == 1
    assert not WebhookEvent.objects.exists()


def test_the_worker_schedules_the_purge() -> None:
    call_command("setup_schedules", stdout=io.StringIO())

    schedule = Schedule.objects.get(name="purge_webhook_events")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "psp.tasks.webhook_events_purge",
        Schedule.MINUTES,
        60,
    )
