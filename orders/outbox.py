"""The outbox: calls the node owes the aggregator, stored with the state change that implies them.

Writing (``outbox_enqueue*``) happens inside the caller's transaction, and so does the one kick to the
worker that the transaction needs (``provision.queue``); an order's own pipeline delivers its rows
itself. Delivery (``outbox_deliver_due``) claims due rows with ``skip_locked`` and a lease, commits, calls
the aggregator with no lock held, then records the answer in a new transaction. A crash between
the two leaves the lease to expire and the row is sent again: at-least-once, and every call we make is
idempotent on the aggregator's side (same txId, same reason).

Retries: exponential backoff with full jitter, capped at ``OUTBOX_BACKOFF_CAP`` seconds, forever, until
the aggregator answers definitively (2xx, or a 4xx other than 429). Final refusals stay visible to ops
(status ``refused``) and can be replayed or abandoned (``manage.py outbox``, admin).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from orders import locks
from orders.clients.aggregator import AggregatorClient, AggregatorConfig, AggregatorError
from orders.models import Order, OutboxKind, OutboxMessage, OutboxStatus
from provision import queue

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BACKOFF_BASE_SECONDS = 1.0


def _kick() -> None:
    """One delivery run per transaction, queued with it (``provision.queue``); none while a pipeline runs."""
    queue.enqueue(
        "orders.tasks.outbox_deliver_due",
        task_name="outbox_deliver_due",
        deferrable=True,
        once_per_transaction=True,
        q_options={"ack_failure": True},
    )


def outbox_enqueue(
    *, kind: str, dedupe_key: str, path: str, payload: Mapping[str, object], order: Order | None = None
) -> OutboxMessage:
    """Store a call for delivery (idempotent on ``dedupe_key``). Must run inside the caller's transaction."""
    existing = OutboxMessage.objects.filter(dedupe_key=dedupe_key).first()
    if existing is not None:
        logger.info("outbox.enqueue_repeat", extra={"dedupe_key": dedupe_key})
        return existing
    try:
        with transaction.atomic():
            message = OutboxMessage.objects.create(
                kind=kind, dedupe_key=dedupe_key, path=path, payload=dict(payload), order=order
            )
    except IntegrityError:
        return OutboxMessage.objects.get(dedupe_key=dedupe_key)
    _kick()
    return message


def outbox_enqueue_balance_report(*, currency: str) -> OutboxMessage:
    """Coalesced: at most one pending balance report per currency; figures are read at delivery time."""
    return outbox_enqueue(
        kind=OutboxKind.BALANCES,
        dedupe_key=f"balances:{currency}:pending",
        path="balances",
        payload={"currency": currency},
    )


def _backoff(attempts: int, retry_after: float | None) -> timedelta:
    cap = float(settings.OUTBOX_BACKOFF_CAP)
    delay = random.uniform(0, min(cap, BACKOFF_BASE_SECONDS * (2 ** min(attempts, 16))))  # noqa: S311
    if retry_after is not None:
        delay = max(delay, min(retry_after, 300.0))
    return timedelta(seconds=max(delay, 0.5))


def _claim(now: datetime, *, order_pk: int | None = None, kind: str | None = None) -> OutboxMessage | None:
    """Take one due row, respecting per-order order (pending fulfil before success), under a lease.

    ``order_pk`` / ``kind`` narrow the choice to one order's rows or one kind of row."""
    earlier_pending = OutboxMessage.objects.filter(
        order=OuterRef("order"), status=OutboxStatus.PENDING, pk__lt=OuterRef("pk")
    )
    with transaction.atomic():
        message = (
            locks.outbox_locked()
            .filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(order__isnull=True) | ~Exists(earlier_pending))
            .filter(**_narrowed(order_pk, kind))
            .first()
        )
        if message is None:
            return None
        message.attempts += 1
        message.next_attempt_at = now + LEASE
        message.save(update_fields=["attempts", "next_attempt_at"])
        return message


def _narrowed(order_pk: int | None, kind: str | None) -> dict[str, object]:
    lookups: dict[str, object] = {}
    if order_pk is not None:
        lookups["order_id"] = order_pk
    if kind is not None:
        lookups["kind"] = kind
    return lookups


def _payload_for(message: OutboxMessage) -> dict[str, object]:
    if message.kind != OutboxKind.BALANCES:
        return dict(message.payload)
    from balances import selectors as balance_selectors
    from balances.money import to_wire

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
    order_pk: int | None = None,
    kind: str | None = None,
) -> bool:
    """Claim and deliver one due row (of ``order_pk`` / ``kind`` when given). False when nothing is due."""
    message = _claim(now or timezone.now(), order_pk=order_pk, kind=kind)
    if message is None:
        return False
    client = client or AggregatorClient(AggregatorConfig.from_settings())
    try:
        answer = client.post(message.path, _payload_for(message))
    except AggregatorError as exc:
        _record_failure(message.pk, exc)
        return True
    _record_delivery(message_id=message.pk, order_pk=message.order_id, status_code=answer.status_code)
    return True


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


def _record_delivery(*, message_id: int, order_pk: int | None, status_code: int) -> None:
    """Mark the row delivered; a delivered fulfil ``success`` moves its paid order to fulfilled in the same
    transaction (so a crash can never leave a reported order stuck in ``paid``). Locks the order first."""
    with transaction.atomic():
        order = locks.order_locked().get(pk=order_pk) if order_pk else None
        message = OutboxMessage.objects.select_for_update().get(pk=message_id)
        if message.status != OutboxStatus.PENDING:
            logger.info("outbox.delivered_again", extra={"dedupe_key": message.dedupe_key})
            return
        message.status = OutboxStatus.DELIVERED
        message.delivered_at = timezone.now()
        message.last_status_code = status_code
        message.last_error = ""
        update = ["status", "delivered_at", "last_status_code", "last_error"]
        if message.kind == OutboxKind.BALANCES:
            message.dedupe_key = f"balances:{message.payload['currency']}:{message.pk}"
            update.append("dedupe_key")
        message.save(update_fields=update)
        logger.info(
            "outbox.delivered", extra={"dedupe_key": message.dedupe_key, "attempts": message.attempts}
        )
        if (
            order is not None
            and message.kind == OutboxKind.FULFIL
            and message.payload.get("validationStatus") == "success"
        ):
            from orders import services as order_services

            order_services.order_record_fulfil_reported_locked(order=order)


def outbox_deliver_due(
    *,
    limit: int = 200,
    client: AggregatorClient | None = None,
    now: Callable[[], datetime] = timezone.now,
    order_pk: int | None = None,
    kind: str | None = None,
) -> int:
    """Deliver due rows (of ``order_pk`` / ``kind`` when given) until none is due or ``limit`` is reached;
    return how many were attempted."""
    client = client or AggregatorClient(AggregatorConfig.from_settings())
    done = 0
    while done < limit and outbox_deliver_one(client=client, now=now(), order_pk=order_pk, kind=kind):
        done += 1
    return done


def outbox_next_due_at(*, order_pk: int | None = None) -> datetime | None:
    """When the next pending row is due, or None when nothing is pending. For one order, that is its
    oldest pending row (the rows after it wait for it, whatever their own time)."""
    pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING)
    if order_pk is not None:
        pending = pending.filter(order_id=order_pk).order_by("pk")
    else:
        pending = pending.order_by("next_attempt_at")
    return pending.values_list("next_attempt_at", flat=True).first()


@transaction.atomic
def outbox_replay(*, message_id: int) -> OutboxMessage:
    """Send a refused (or abandoned) row again from now."""
    message = OutboxMessage.objects.select_for_update().get(pk=message_id)
    message.status = OutboxStatus.PENDING
    message.next_attempt_at = timezone.now()
    message.save(update_fields=["status", "next_attempt_at"])
    _kick()
    return message


@transaction.atomic
def outbox_abandon(*, message_id: int) -> OutboxMessage:
    """Stop trying to deliver a row (ops decision; recorded in its status)."""
    message = OutboxMessage.objects.select_for_update().get(pk=message_id)
    message.status = OutboxStatus.ABANDONED
    message.save(update_fields=["status"])
    return message
