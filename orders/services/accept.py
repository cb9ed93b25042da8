"""Accepting an order with the aggregator: one attempt at a time, answers applied under the order lock.

The accept call is the one synchronous call to the aggregator (its answer carries the recipient); it is
made between two transactions, never under a lock. An attempt first takes the order's accept claim
(``accept_claimed_until``): a second run of the same order finds it and leaves the order alone.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from balances import services as balance_services
from orders.clients.aggregator import (
    AcceptedOrder,
    AggregatorClient,
    AggregatorConfig,
    AggregatorRefused,
    AggregatorUnavailable,
    accepted_order_from,
)
from orders.models import Order, OrderStatus, OutboxKind
from orders.services import outbox
from orders.services.common import order_lock
from orders.services.decide import order_needs_staff_approval
from provision import runtime

logger = logging.getLogger(__name__)

ACCEPT_SETTLE_MARGIN = timedelta(seconds=5)
SETTLE_LIST_PAGES = 5
# How long a lane's claim keeps other lanes off an offer: longer than a decide and an accept call take. A
# lane that dies holding it loses nothing; after the window, the accept is settled from the order list.
ACCEPT_CLAIM = timedelta(seconds=30)
_OPEN = (OrderStatus.RECEIVED, OrderStatus.ACCEPTING)


@transaction.atomic
def orders_claim_accept_due(*, limit: int, now: datetime | None = None) -> list[int]:
    """Claim up to ``limit`` offers due to be decided or accepted (oldest first, skipping rows another lane
    holds): the lane's accept threads take them."""
    now = now or timezone.now()
    pks = list(
        Order.objects.select_for_update(skip_locked=True)
        .filter(status__in=_OPEN, accept_due_at__lte=now)
        .order_by("accept_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    if pks:
        Order.objects.filter(pk__in=pks).update(accept_due_at=now + ACCEPT_CLAIM)
    return pks


def orders_make_accept_due(*, now: datetime | None = None) -> int:
    """Open offers that no lane will take by itself, due now; how many. An offer left for staff under a
    policy that has since changed (while its window is open), and a staff accept whose web request died
    before its answer was applied (the list settles it)."""
    now = now or timezone.now()
    left = Q(status=OrderStatus.ACCEPTING)
    if not runtime.current().staff_policy:
        left |= Q(status=OrderStatus.RECEIVED, accept_deadline__gt=now)
    return Order.objects.filter(left, accept_due_at__isnull=True).update(accept_due_at=now)


@transaction.atomic(durable=True)
def order_accept_later(*, order_pk: int, when: datetime | None) -> Order:
    """Decide or accept the offer again at ``when`` (None: not by itself; staff decide it)."""
    order = order_lock(order_pk)
    if order.status in _OPEN:
        order.accept_due_at = when
        order.save(update_fields=["accept_due_at", "updated_at"])
    return order


def _client() -> AggregatorClient:
    return AggregatorClient(AggregatorConfig.from_settings())


def order_accept_with_aggregator(
    *,
    order_pk: int,
    client: AggregatorClient | None = None,
    now: datetime | None = None,
    order: Order | None = None,
) -> Order:
    """Claim the order's accept, call accept (no lock held) and apply the answer in a new transaction.

    201: store the recipient and move to ``accepted`` (or ``held``). 404: the order is not ours, unless an
    earlier attempt's outcome is unknown (a retryable error, or an attempt that ended without applying its
    answer): then the aggregator's order list decides. Retryable errors leave the order in ``accepting``
    with ``accept_outcome_unknown`` set; the caller retries while the window is open, and after it closes
    the order list decides. While another attempt holds the claim this does nothing and returns the order.
    ``order``: the order as the caller has just read it (only its state and deadline are used).
    """
    client = client or _client()
    if order is None or order.pk != order_pk:
        order = Order.objects.get(pk=order_pk)
    if order.status != OrderStatus.ACCEPTING:
        return order
    now = now or timezone.now()
    claimed = _claim_accept(order_pk=order_pk, now=now, lease=_accept_lease(client))
    if claimed is None:
        return Order.objects.get(pk=order_pk)
    if now >= claimed.accept_deadline + ACCEPT_SETTLE_MARGIN:
        # The window has closed without a known answer (lost 201, crash mid-call): the list decides.
        return _settle_unknown_accept(order_pk=order_pk, client=client)
    try:
        accepted = client.accept(claimed.order_id)
    except AggregatorUnavailable as exc:
        _note_accept_unknown(order_pk=order_pk, error=exc.message)
        raise
    except AggregatorRefused as exc:
        if exc.status_code == 404 and claimed.accept_outcome_unknown:
            return _settle_unknown_accept(order_pk=order_pk, client=client)
        return order_apply_accept_refused(
            order_pk=order_pk, reason=f"accept refused: HTTP {exc.status_code} {exc.message}"
        )
    except BaseException:
        _release_accept_claim(order_pk=order_pk)
        raise
    return order_apply_accepted(order_pk=order_pk, accepted=accepted)


def _accept_lease(client: AggregatorClient) -> timedelta:
    """How long a claim keeps other attempts away: longer than the accept call can take."""
    call = timedelta(seconds=client.config.connect_timeout + client.config.read_timeout)
    return 2 * call + ACCEPT_SETTLE_MARGIN


@transaction.atomic(durable=True)
def _claim_accept(*, order_pk: int, now: datetime, lease: timedelta) -> Order | None:
    """Take the order's accept claim; None when it is not accepting or another attempt holds the claim.

    Every answer an attempt can get is applied with the claim held and either moves the order on or marks
    the outcome unknown; so an earlier attempt that left the order accepting without doing either died
    with its answer (maybe a 201): this attempt's 404 then means "unknown", not "not ours".
    """
    order = order_lock(order_pk)
    if order.status != OrderStatus.ACCEPTING:
        return None
    if order.accept_claimed_until is not None and order.accept_claimed_until > now:
        logger.info("order.accept_in_flight", extra={"order_id": order.order_id})
        return None
    if order.accept_claimed_until is not None:
        order.accept_outcome_unknown = True
    order.accept_attempts += 1
    order.accept_claimed_until = now + lease
    order.save(
        update_fields=["accept_attempts", "accept_outcome_unknown", "accept_claimed_until", "updated_at"]
    )
    return order


@transaction.atomic(durable=True)
def _release_accept_claim(*, order_pk: int) -> None:
    """An attempt stopped before any answer (an error of the node's own): no call was made."""
    Order.objects.filter(pk=order_pk, status=OrderStatus.ACCEPTING).update(accept_claimed_until=None)


@transaction.atomic(durable=True)
def _note_accept_unknown(*, order_pk: int, error: str) -> None:
    order = order_lock(order_pk)
    order.accept_outcome_unknown = True
    order.accept_claimed_until = None
    order.save(update_fields=["accept_outcome_unknown", "accept_claimed_until", "updated_at"])
    logger.warning("order.accept_unknown", extra={"order_id": order.order_id, "error": error[:200]})


def _settle_unknown_accept(*, order_pk: int, client: AggregatorClient) -> Order:
    """Find out from the aggregator's order list whether a lost accept went through (claim held)."""
    order = Order.objects.get(pk=order_pk)
    try:
        # Newest first (the list's default order), so a just-accepted order is on the first page; a few
        # more pages cover a busy provider. Bounded: a lookup must finish well inside a task's timeout.
        for page in range(1, SETTLE_LIST_PAGES + 1):
            listed = client.list_orders(
                currency=order.currency, status="processing", page=page, page_size=100
            )
            for row in listed:
                if str(row.get("id")) == order.order_id:
                    logger.info(
                        "order.accept_found_in_list", extra={"order_id": order.order_id, "page": page}
                    )
                    # In the list, ``amount`` is the token amount; fiat = round_half_even(amount x rate).
                    accepted = replace(
                        accepted_order_from(row, fallback_id=order.order_id), amount=_fiat_from_list_row(row)
                    )
                    return order_apply_accepted(order_pk=order_pk, accepted=accepted)
            if len(listed) < 100:
                break
    except AggregatorUnavailable as exc:
        _note_accept_unknown(order_pk=order_pk, error=exc.message)
        raise
    except BaseException:
        _release_accept_claim(order_pk=order_pk)
        raise
    return order_apply_accept_refused(
        order_pk=order_pk, reason="accept outcome unknown and the order is not ours"
    )


def _fiat_from_list_row(row: dict[str, Any]) -> Decimal | None:
    try:
        token_amount, rate = Decimal(str(row["amount"])), Decimal(str(row["rate"]))
    except (KeyError, ArithmeticError):
        return None
    return (token_amount * rate).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)


@transaction.atomic(durable=True)
def order_apply_accepted(*, order_pk: int, accepted: AcceptedOrder, now: datetime | None = None) -> Order:
    """Persist the recipient from the accept answer, then move to ``accepted`` or ``held``."""
    now = now or timezone.now()
    order = order_lock(order_pk)
    if order.status == OrderStatus.LOST:
        _give_back_locked(order, now=now)
        return order
    if order.status != OrderStatus.ACCEPTING:
        logger.info("order.accept_answer_repeat", extra={"order_id": order.order_id, "status": order.status})
        return order
    order.accept_claimed_until = None
    if accepted.account_identifier:
        order.account_identifier = accepted.account_identifier
        order.account_name = accepted.account_name
        order.memo = accepted.memo
    if accepted.institution:
        order.institution = accepted.institution
    order.metadata = accepted.metadata
    order.accept_amount = accepted.amount
    order.accept_outcome_unknown = False
    order.confirm_accept(at=now, description="Aggregator accepted (201)")
    if accepted.amount is not None and accepted.amount != order.amount:
        logger.error(
            "order.accept_amount_mismatch",
            extra={
                "order_id": order.order_id,
                "offered": str(order.amount),
                "accepted": str(accepted.amount),
            },
        )
        order.save()
        order.hold(
            until=now + timedelta(seconds=runtime.current().manual_approval_timeout),
            description="Amount mismatch",
        )
        order.save()
        return order
    if not order.account_identifier:
        order.save()
        order.hold(
            until=now + timedelta(seconds=runtime.current().manual_approval_timeout),
            description="No recipient",
        )
        order.save()
        return order
    order.save()
    if order_needs_staff_approval(order=order):
        order.hold(
            until=now + timedelta(seconds=runtime.current().manual_approval_timeout),
            description="Held for staff approval",
        )
    else:
        order.payout_due_at = now  # the payout lane starts it
    order.save()
    logger.info("order.accepted", extra={"order_id": order.order_id, "status": order.status})
    return order


def _give_back_locked(order: Order, *, now: datetime) -> None:
    """A 201 for an order already settled as not ours (the late answer of an attempt that outlived its
    claim): the aggregator has made it ours, but its reservation is gone (one reserve per order, a ledger
    constraint). Cancel it, so the aggregator reassigns it at once instead of waiting for a fulfil."""
    reason = "Accepted after the provider had released the order"
    order.give_back(reason=reason, at=now, description=reason)
    order.save()
    outbox.outbox_enqueue(
        kind=OutboxKind.CANCEL,
        dedupe_key=f"cancel:{order.order_id}",
        path=f"orders/{order.order_id}/cancel",
        payload={"reason": reason},
        order=order,
    )
    logger.error("order.accept_after_lost", extra={"order_id": order.order_id})


@transaction.atomic(durable=True)
def order_apply_accept_refused(*, order_pk: int, reason: str, now: datetime | None = None) -> Order:
    """The aggregator says the order is not ours: release the reservation; never pay."""
    now = now or timezone.now()
    order = order_lock(order_pk)
    if order.status != OrderStatus.ACCEPTING:
        return order
    balance_services.balance_release(order=order, reason=reason)
    order.accept_refused(at=now, description=reason[:255])
    order.save()
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    logger.warning("order.accept_refused", extra={"order_id": order.order_id, "reason": reason[:200]})
    return order
