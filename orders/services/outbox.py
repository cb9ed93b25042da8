"""The outbox: calls the node owes the aggregator, stored with the state change that implies them.

``outbox_enqueue`` writes a row inside the caller's transaction (committed with the state change, or not
at all); the payout lane finds it due and delivers it from one of its threads
(``orders.services.delivery``), so no aggregator round trip ever holds up an accept. Final refusals
stay visible to ops (status ``refused``) and can be replayed or abandoned (``manage.py outbox``, admin).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.models import Order, OutboxKind, OutboxMessage, OutboxStatus
from provision.errors import Conflict

logger = logging.getLogger(__name__)


class OutboxAlreadyDelivered(Conflict):
    """The aggregator already answered this call for good: there is nothing to send again or give up."""

    code = "outbox_already_delivered"


def _refuse_delivered(message: OutboxMessage, action: str) -> None:
    if message.status == OutboxStatus.DELIVERED:
        raise OutboxAlreadyDelivered(
            f"Cannot {action} outbox row {message.pk}: it was already delivered",
            message_id=message.pk,
            status=message.status,
        )


def outbox_enqueue(
    *,
    kind: str,
    dedupe_key: str,
    path: str,
    payload: Mapping[str, object],
    order: Order | None = None,
    delay: timedelta | None = None,
) -> OutboxMessage:
    """Store a call for delivery (idempotent on ``dedupe_key``): the payout lane delivers it (it looks for
    due rows every ``PAYOUT_LANE_POLL`` seconds). Runs inside the caller's transaction, which holds the
    order's row lock when ``order`` is given. ``delay``: not to be sent before then."""
    existing = OutboxMessage.objects.filter(dedupe_key=dedupe_key).first()
    if existing is not None:
        logger.debug("outbox.enqueue_repeat", extra={"dedupe_key": dedupe_key})  # routine: coalescing
        return existing
    fields: dict[str, object] = {
        "kind": kind,
        "dedupe_key": dedupe_key,
        "path": path,
        "payload": dict(payload),
        "order": order,
    }
    if delay:
        fields["next_attempt_at"] = timezone.now() + delay
    try:
        with transaction.atomic():  # a savepoint: a concurrent writer of the same key wins, we read it
            message = OutboxMessage.objects.create(**fields)
    except IntegrityError:
        return OutboxMessage.objects.get(dedupe_key=dedupe_key)
    return message


def outbox_enqueue_balance_report(*, currency: str) -> OutboxMessage:
    """Coalesced: at most one pending balance report per currency, sent ``BALANCE_REPORT_DELAY`` seconds
    after the first change it covers (0: at once); its figures are read when it is sent."""
    delay = settings.BALANCE_REPORT_DELAY
    return outbox_enqueue(
        kind=OutboxKind.BALANCES,
        dedupe_key=f"balances:{currency}:pending",
        path="balances",
        payload={"currency": currency},
        delay=timedelta(seconds=delay) if delay else None,
    )


@transaction.atomic
def outbox_replay(*, message_id: int) -> OutboxMessage:
    """Send a refused (or abandoned) row again from now. Raises OutboxAlreadyDelivered."""
    message = OutboxMessage.objects.select_for_update().get(pk=message_id)
    _refuse_delivered(message, "replay")
    message.status = OutboxStatus.PENDING
    message.next_attempt_at = timezone.now()
    message.save(update_fields=["status", "next_attempt_at"])
    return message


@transaction.atomic
def outbox_abandon(*, message_id: int) -> OutboxMessage:
    """Stop trying to deliver a row (ops decision; recorded in its status). Raises OutboxAlreadyDelivered:
    a delivered row stays delivered (the aggregator was told; "abandoned" would say it was not)."""
    message = OutboxMessage.objects.select_for_update().get(pk=message_id)
    _refuse_delivered(message, "abandon")
    message.status = OutboxStatus.ABANDONED
    message.save(update_fields=["status"])
    return message
