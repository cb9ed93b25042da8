"""What the node keeps of PSP webhooks, and for how long.

* A verified webhook is stored raw, once per ``(psp, event_id)`` (``webhook_event_store``).
* An unsigned callback (MTN MoMo's: ``PspAdapter.webhooks_signed`` is false) proves nothing about its
  sender, so it is stored only when its reference names a transfer of that PSP, and at most
  ``UNSIGNED_EVENTS_PER_REFERENCE`` times per transfer: anyone can post one, and each stored row queues a
  task. The transfer is read from the PSP anyway; more callbacks would add nothing.
* A delivery refused for its signature is counted in ``WebhookRefusals`` (every one), and at most
  ``WEBHOOK_REFUSED_SAMPLE_PER_HOUR`` of them per PSP and clock hour are stored, body cut to
  ``REFUSED_BODY_CHARS``, as a sample for whoever investigates (``webhook_refusal_record``).
* ``webhook_events_purge`` deletes verified rows after ``WEBHOOK_RETENTION_DAYS`` and refused ones after
  ``WEBHOOK_REFUSED_RETENTION_DAYS`` (an hourly schedule). What a webhook changed outlives it: the
  transfer's history and the order's transition log are not purged.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from psp.base import WebhookNotice
from psp.models import Transfer, WebhookEvent, WebhookRefusals

REFUSED_BODY_CHARS = 2048
UNSIGNED_EVENTS_PER_REFERENCE = 10
PURGE_BATCH = 5000


class StoreOutcome(enum.StrEnum):
    STORED = "received"
    DUPLICATE = "duplicate"
    UNKNOWN_REFERENCE = "unknown_reference"
    OVER_LIMIT = "over_limit"


@dataclass(frozen=True)
class Stored:
    """What became of a webhook: ``event`` is the new row (None unless ``outcome`` is STORED)."""

    outcome: StoreOutcome
    event: WebhookEvent | None = None


def _create(**fields: object) -> WebhookEvent | None:
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(**fields)
    except IntegrityError:  # (psp, event_id) exists: a duplicate delivery
        return None


def webhook_event_store(*, psp: str, notice: WebhookNotice, body: bytes, signed: bool) -> Stored:
    """Store a webhook the adapter accepted, unless it repeats one, or (unsigned) is about no transfer
    of ``psp`` or about a transfer that already has ``UNSIGNED_EVENTS_PER_REFERENCE`` stored callbacks."""
    if not signed:
        if not Transfer.objects.filter(psp=psp, reference=notice.reference).exists():
            return Stored(StoreOutcome.UNKNOWN_REFERENCE)
        # A count, not a lock: concurrent callbacks may pass it together, so the bound is approximate
        # by the number of web threads, which is still a bound.
        stored = WebhookEvent.objects.filter(psp=psp, reference=notice.reference).count()
        if stored >= UNSIGNED_EVENTS_PER_REFERENCE:
            return Stored(StoreOutcome.OVER_LIMIT)
    event = _create(
        psp=psp,
        event_id=notice.event_id[:128],
        event_type=notice.event_type[:64],
        reference=notice.reference[:64],
        body=body.decode("utf-8", "replace"),
        signature_valid=True,
    )
    if event is None:
        return Stored(StoreOutcome.DUPLICATE)
    return Stored(StoreOutcome.STORED, event)


def _hour_count_after_one_more(*, psp: str, hour: datetime) -> int:
    """Add one refusal to ``psp``'s tally and return the count of ``hour`` including it. The UPDATE takes
    the row's lock until the caller's transaction ends, so concurrent refusals count one after another."""
    tally = WebhookRefusals.objects.filter(psp=psp)
    bump = {
        "total": F("total") + 1,
        # SET expressions read the row as it was: a new hour starts its count again.
        "hour_count": Case(When(hour_start=hour, then=F("hour_count") + 1), default=Value(1)),
        "hour_start": hour,
    }
    if not tally.update(**bump):
        try:
            with transaction.atomic():
                WebhookRefusals.objects.create(psp=psp, total=1, hour_start=hour, hour_count=1)
                return 1
        except IntegrityError:  # another refusal created it first
            tally.update(**bump)
    return tally.values_list("hour_count", flat=True).get()


@transaction.atomic(durable=True)
def webhook_refusal_record(*, psp: str, body: bytes, now: datetime | None = None) -> WebhookEvent | None:
    """Count a delivery refused for its signature; store it (body cut to ``REFUSED_BODY_CHARS``) while
    ``psp``'s clock hour has fewer than ``WEBHOOK_REFUSED_SAMPLE_PER_HOUR`` stored. The stored row, or
    None (over the sample, or the same body was stored before)."""
    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    if _hour_count_after_one_more(psp=psp, hour=hour) > settings.WEBHOOK_REFUSED_SAMPLE_PER_HOUR:
        return None
    return _create(
        psp=psp,
        event_id="invalid:" + hashlib.sha256(body).hexdigest()[:40],
        body=body.decode("utf-8", "replace")[:REFUSED_BODY_CHARS],
        signature_valid=False,
    )


def webhook_events_purge(*, now: datetime | None = None, batch: int = PURGE_BATCH) -> int:
    """Delete webhook rows past their retention, ``batch`` rows per statement (short transactions
    however much there is). How many were deleted."""
    now = now or timezone.now()
    stale = Q(
        signature_valid=True, received_at__lt=now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    ) | Q(
        signature_valid=False, received_at__lt=now - timedelta(days=settings.WEBHOOK_REFUSED_RETENTION_DAYS)
    )
    deleted = 0
    while pks := list(WebhookEvent.objects.filter(stale).order_by().values_list("pk", flat=True)[:batch]):
        count, _ = WebhookEvent.objects.filter(pk__in=pks).delete()
        deleted += count
    return deleted
