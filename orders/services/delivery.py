"""Delivering the outbox: claim due rows, call the aggregator with no lock held, record the answer.

The payout lane claims due rows (``outbox_claim_due``) and delivers each from a thread
(``outbox_deliver_claimed``): many calls in flight, none of them in the lane's accept threads.

A claim takes due rows with ``skip_locked`` and a lease and commits; the call is made; the answer is
recorded in a new transaction. A crash between the two leaves the lease to expire and the row is sent
again: at-least-once, and every call the node makes is idempotent on the aggregator's side (same txId,
same reason). An order's rows go out in order (fulfil ``pending`` before ``success``).

Retries: exponential backoff with full jitter, capped at ``OUTBOX_BACKOFF_CAP`` seconds, forever, until
the aggregator answers definitively (2xx, or a 4xx other than 429).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from balances import selectors as balance_selectors
from balances.money import to_wire
from orders.clients.aggregator import AggregatorClient, AggregatorConfig, AggregatorError
from orders.models import OutboxKind, OutboxMessage, OutboxStatus
from orders.services import common

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BACKOFF_BASE_SECONDS = 1.0


def _backoff(attempts: int, retry_after: float | None) -> timedelta:
    cap = float(settings.OUTBOX_BACKOFF_CAP)
    delay = random.uniform(0, min(cap, BACKOFF_BASE_SECONDS * (2 ** min(attempts, 16))))  # noqa: S311
    if retry_after is not None:
        delay = max(delay, min(retry_after, 300.0))
    return timedelta(seconds=max(delay, 0.5))


def _due(now: datetime, *, kind: str | None = None) -> QuerySet[OutboxMessage]:
    """Rows due now, oldest first, locked as read (others skipped): an order's row only when no earlier row
    of that order is pending (fulfil ``pending`` goes before ``success``). ``kind``: one kind only."""
    earlier_pending = OutboxMessage.objects.filter(
        order=OuterRef("order"), status=OutboxStatus.PENDING, pk__lt=OuterRef("pk")
    )
    return (
        OutboxMessage.objects.select_for_update(of=("self",), skip_locked=True)
        .order_by("pk")
        .filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(order__isnull=True) | ~Exists(earlier_pending))
        .filter(**({"kind": kind} if kind else {}))
    )


def _payload_for(message: OutboxMessage) -> dict[str, object]:
    if message.kind != OutboxKind.BALANCES:
        return dict(message.payload)
    currency = str(message.payload["currency"])
    balance = balance_selectors.balance_get(currency=currency)
    zero = type(balance.total)("0")
    return {
        "currency": currency,
        "availableBalance": to_wire(max(balance.available, zero)),
        "totalBalance": to_wire(max(balance.total, zero)),
        "reservedBalance": to_wire(max(balance.reserved, zero)),
    }


def outbox_deliver_one(
    *,
    client: AggregatorClient | None = None,
    now: datetime | None = None,
    kind: str | None = None,
) -> bool:
    """Claim and deliver one due row (of ``kind`` when given). False when nothing is due."""
    claimed = outbox_claim_due(limit=1, now=now, kind=kind)
    for message_id in claimed:
        outbox_deliver_claimed(message_id=message_id, client=client)
    return bool(claimed)


def outbox_claim_due(*, limit: int, now: datetime | None = None, kind: str | None = None) -> list[int]:
    """Claim up to ``limit`` due rows (of ``kind`` when given), each under a lease with one more attempt
    counted (an order's rows one at a time, in order): the payout lane delivers each from a thread
    (``outbox_deliver_claimed``)."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = list(_due(now, kind=kind).values_list("pk", flat=True)[:limit])
        if claimed:
            OutboxMessage.objects.filter(pk__in=claimed).update(
                attempts=F("attempts") + 1, next_attempt_at=now + LEASE
            )
    return claimed


def outbox_deliver_claimed(*, message_id: int, client: AggregatorClient | None = None) -> None:
    """Deliver a row claimed by ``outbox_claim_due`` (no lock held over the call)."""
    message = OutboxMessage.objects.get(pk=message_id)
    if message.status == OutboxStatus.PENDING:
        _deliver(message, client or AggregatorClient(AggregatorConfig.from_settings()))


def _deliver(message: OutboxMessage, client: AggregatorClient) -> None:
    try:
        answer = client.post(message.path, _payload_for(message))
    except AggregatorError as exc:
        _record_failure(message.pk, exc)
        return
    _record_delivery(message=message, status_code=answer.status_code)


def _record_failure(message_id: int, exc: AggregatorError) -> None:
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update().get(pk=message_id)
        if message.status != OutboxStatus.PENDING:
            return
        message.last_status_code = exc.status_code
        message.last_error = exc.message[:2000]
        if exc.retryable:
            message.next_attempt_at = timezone.now() + _backoff(message.attempts, exc.retry_after)
            logger.warning(
                "outbox.retry",
                extra={
                    "dedupe_key": message.dedupe_key,
                    "attempts": message.attempts,
                    "status": exc.status_code,
                },
            )
        else:
            message.status = OutboxStatus.REFUSED
            logger.error(
                "outbox.refused",
                extra={
                    "dedupe_key": message.dedupe_key,
                    "status": exc.status_code,
                    "error": exc.message[:200],
                },
            )
        message.save(update_fields=["last_status_code", "last_error", "next_attempt_at", "status"])


def _reports_success(message: OutboxMessage) -> bool:
    return (
        message.order_id is not None
        and message.kind == OutboxKind.FULFIL
        and message.payload.get("validationStatus") == "success"
    )


def _record_delivery(*, message: OutboxMessage, status_code: int) -> None:
    """Mark the row delivered (unless something else did first); a delivered fulfil ``success`` moves its
    paid order to fulfilled in the same transaction, with the order locked first, so a crash can never
    leave a reported order stuck in ``paid``."""
    with transaction.atomic():
        order = None
        if message.order_id is not None and _reports_success(message):
            order = common.order_lock(message.order_id)
        changes: dict[str, object] = {
            "status": OutboxStatus.DELIVERED,
            "delivered_at": timezone.now(),
            "last_status_code": status_code,
            "last_error": "",
        }
        if message.kind == OutboxKind.BALANCES:  # frees the coalescing key for the next report
            changes["dedupe_key"] = f"balances:{message.payload['currency']}:{message.pk}"
        if not OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(**changes):
            logger.info("outbox.delivered_again", extra={"dedupe_key": message.dedupe_key})
            return
        logger.info(
            "outbox.delivered", extra={"dedupe_key": message.dedupe_key, "attempts": message.attempts}
        )
        if order is not None:
            common.order_record_fulfil_reported_locked(order=order)


def outbox_deliver_due(
    *,
    limit: int = 200,
    client: AggregatorClient | None = None,
    now: Callable[[], datetime] = timezone.now,
    kind: str | None = None,
) -> int:
    """Deliver due rows (of ``kind`` when given) until none is due or ``limit`` is reached;
    return how many were attempted."""
    client = client or AggregatorClient(AggregatorConfig.from_settings())
    done = 0
    while done < limit and outbox_deliver_one(client=client, now=now(), kind=kind):
        done += 1
    return done
