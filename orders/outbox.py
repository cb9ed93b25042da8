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
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from orders import locks
from orders.clients.aggregator import AggregatorClient, AggregatorConfig, AggregatorError
from orders.models import Order, OutboxKind, OutboxMessage, OutboxStatus
from provision import queue

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BACKOFF_BASE_SECONDS = 1.0


def _kick(at: datetime | None = None) -> None:
    """One delivery run per transaction, queued with it (``provision.queue``); none while a pipeline runs,
    unless the row is not due yet (``at``): the pipeline will be gone by then, so that run is queued."""
    queue.enqueue(
        "orders.tasks.outbox_deliver_due",
        task_name="outbox_deliver_due" if at is None else "outbox_deliver_later",
        deferrable=at is None,
        once_per_transaction=True,
        at=at,
        q_options={"ack_failure": True},
    )


def outbox_enqueue(
    *,
    kind: str,
    dedupe_key: str,
    path: str,
    payload: Mapping[str, object],
    order: Order | None = None,
    delay: timedelta | None = None,
    absent: bool = False,
) -> OutboxMessage:
    """Store a call for delivery (idempotent on ``dedupe_key``). Must run inside the caller's transaction,
    which holds the order's row lock when ``order`` is given. ``delay``: not to be sent before then.
    ``absent``: the caller has just checked, under that lock, that no row has this key."""
    if not absent:
        existing = OutboxMessage.objects.filter(dedupe_key=dedupe_key).first()
        if existing is not None:
            logger.debug("outbox.enqueue_repeat", extra={"dedupe_key": dedupe_key})  # routine: coalescing
            return existing
    due_at = timezone.now() + delay if delay else None
    fields: dict[str, object] = {
        "kind": kind,
        "dedupe_key": dedupe_key,
        "path": path,
        "payload": dict(payload),
        "order": order,
    }
    if due_at is not None:
        fields["next_attempt_at"] = due_at
    if order is not None:
        # Every writer of an order's rows holds the order's row lock, so no other transaction can insert
        # this key meanwhile: no savepoint needed (a violation would still fail the whole transaction).
        message = OutboxMessage.objects.create(**fields)
    else:
        try:
            with transaction.atomic():
                message = OutboxMessage.objects.create(**fields)
        except IntegrityError:
            return OutboxMessage.objects.get(dedupe_key=dedupe_key)
    _kick(at=due_at)
    return message


def outbox_keys_present(keys: list[str]) -> set[str]:
    """Which of these dedupe keys already have a row (one query)."""
    return set(OutboxMessage.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", flat=True))


def outbox_enqueue_balance_report(*, currency: str) -> OutboxMessage:
    """Coalesced: at most one pending balance report per currency, sent ``BALANCE_REPORT_DELAY`` seconds
    after the first change it covers; its figures are read when it is sent."""
    delay = settings.BALANCE_REPORT_DELAY
    return outbox_enqueue(
        kind=OutboxKind.BALANCES,
        dedupe_key=f"balances:{currency}:pending",
        path="balances",
        payload={"currency": currency},
        delay=timedelta(seconds=delay) if delay else None,
    )


def _backoff(attempts: int, retry_after: float | None) -> timedelta:
    cap = float(settings.OUTBOX_BACKOFF_CAP)
    delay = random.uniform(0, min(cap, BACKOFF_BASE_SECONDS * (2 ** min(attempts, 16))))  # noqa: S311
    if retry_after is not None:
        delay = max(delay, min(retry_after, 300.0))
    return timedelta(seconds=max(delay, 0.5))


def _claim(now: datetime, *, kind: str | None = None) -> OutboxMessage | None:
    """Take one due row, respecting per-order order (pending fulfil before success), under a lease.

    ``kind`` narrows the choice to one kind of row."""
    earlier_pending = OutboxMessage.objects.filter(
        order=OuterRef("order"), status=OutboxStatus.PENDING, pk__lt=OuterRef("pk")
    )
    with transaction.atomic():
        message = (
            locks.outbox_locked()
            .filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(order__isnull=True) | ~Exists(earlier_pending))
            .filter(**({"kind": kind} if kind else {}))
            .first()
        )
        if message is None:
            return None
        message.attempts += 1
        message.next_attempt_at = now + LEASE
        message.save(update_fields=["attempts", "next_attempt_at"])
        return message


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
    kind: str | None = None,
) -> bool:
    """Claim and deliver one due row (of ``kind`` when given). False when nothing is due."""
    message = _claim(now or timezone.now(), kind=kind)
    if message is None:
        return False
    client = client or AggregatorClient(AggregatorConfig.from_settings())
    try:
        answer = client.post(message.path, _payload_for(message))
    except AggregatorError as exc:
        _record_failure(message.pk, exc)
        return True
    _record_delivery(message=message, status_code=answer.status_code)
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
            order = locks.lock_order(message.order_id)
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
            from orders import services as order_services

            order_services.order_record_fulfil_reported_locked(order=order)


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


class Delivered(NamedTuple):
    delivered: int  # rows delivered
    left: bool  # whether the order still has rows pending (failed, not due yet, or leased elsewhere)


def outbox_deliver_order(*, order_pk: int, client: AggregatorClient | None = None) -> Delivered:
    """Deliver one order's due rows, oldest first, with one claim for all of them; stop at the first that
    fails (the rows after it wait for it).

    The claim locks the order's pending rows (waiting, not skipping: a concurrent claim holds them for
    a moment only) and leases the due ones in order, up to the first that is not due."""
    now = timezone.now()
    left = False
    with transaction.atomic():
        due: list[OutboxMessage] = []
        for message in locks.lock_pending_outbox_rows(order_pk):
            if message.next_attempt_at > now:
                left = True
                break
            message.attempts += 1
            message.next_attempt_at = now + LEASE
            due.append(message)
        if due:  # one plain UPDATE: every claimed row gets the same lease and one more attempt
            OutboxMessage.objects.filter(pk__in=[message.pk for message in due]).update(
                attempts=F("attempts") + 1, next_attempt_at=now + LEASE
            )
    client = client or AggregatorClient(AggregatorConfig.from_settings())
    for index, message in enumerate(due):
        try:
            answer = client.post(message.path, _payload_for(message))
        except AggregatorError as exc:
            _record_failure(message.pk, exc)
            _release([later.pk for later in due[index + 1 :]])
            return Delivered(index, True)
        _record_delivery(message=message, status_code=answer.status_code)
    return Delivered(len(due), left)


def _release(message_ids: list[int]) -> None:
    """Give back claimed rows that were not tried (an earlier row of their order failed): due again, and
    the attempt that did not happen uncounted."""
    if message_ids:
        OutboxMessage.objects.filter(pk__in=message_ids, status=OutboxStatus.PENDING).update(
            attempts=F("attempts") - 1, next_attempt_at=timezone.now()
        )


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
