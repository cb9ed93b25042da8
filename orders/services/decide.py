"""Deciding an offered order: decline, expire, leave for staff, or reserve and go on to accept it."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from balances import services as balance_services
from orders.models import DeclineReason, Order, OrderStatus, OutboxKind, ReviewListEntry
from orders.services import outbox
from orders.services.common import limit_for, order_lock
from provision import runtime
from provision.models import NodeControl
from psp import services as psp_services
from psp.base import AmountRefusal

logger = logging.getLogger(__name__)

# A PSP's own per-transaction limits (psp.base.AmountRefusal) decline like the node's limits do.
_AMOUNT_DECLINES = {
    AmountRefusal.BELOW_MINIMUM: DeclineReason.AMOUNT_BELOW_MINIMUM,
    AmountRefusal.ABOVE_MAXIMUM: DeclineReason.AMOUNT_ABOVE_MAXIMUM,
}


def order_decline_reason(*, order: Order, now: datetime) -> str | None:
    """The rule that refuses this order, or None when the node can take it (balance checked at reserve)."""
    if now >= order.accept_deadline:
        return DeclineReason.ORDER_EXPIRED
    if order.currency not in settings.CURRENCIES:
        return DeclineReason.UNSUPPORTED_CURRENCY
    rules = runtime.current()
    minimum = limit_for(rules.min_order_amount, order.currency)
    if minimum is not None and order.amount < minimum:
        return DeclineReason.AMOUNT_BELOW_MINIMUM
    maximum = limit_for(rules.max_order_amount, order.currency)
    if maximum is not None and order.amount > maximum:
        return DeclineReason.AMOUNT_ABOVE_MAXIMUM
    able, healthy = psp_services.psp_payable(
        currency=order.currency,
        institution=order.institution,
        exclude=order.exclude_psps,
        amount=order.amount,
    )
    if not able:
        refusal = psp_services.psp_amount_refusal(
            currency=order.currency,
            institution=order.institution,
            amount=order.amount,
            exclude=order.exclude_psps,
        )
        if refusal is not None and refusal in _AMOUNT_DECLINES:
            return _AMOUNT_DECLINES[refusal]
        return DeclineReason.UNSUPPORTED_INSTITUTION
    if not healthy:
        return DeclineReason.PSP_UNAVAILABLE
    return None


def order_needs_staff_approval(*, order: Order) -> bool:
    """Manual mode, an amount above MANUAL_REVIEW_ABOVE, or a recipient on the review list."""
    rules = runtime.current()
    if rules.provision_mode == "manual":
        return True
    threshold = limit_for(rules.manual_review_above, order.currency)
    if threshold is not None and order.amount > threshold:
        return True
    return ReviewListEntry.objects.filter(
        Q(institution="") | Q(institution=order.institution), account_identifier=order.account_identifier
    ).exists()


def _decline_locked(order: Order, *, reason: str, now: datetime, actor: AbstractBaseUser | None) -> None:
    order.decline(reason=reason, at=now, by=actor, description=DeclineReason(reason).label)
    order.save()
    outbox.outbox_enqueue(
        kind=OutboxKind.DECLINE,
        dedupe_key=f"decline:{order.order_id}",
        path=f"orders/{order.order_id}/decline",
        payload={"reason": DeclineReason(reason).label},
        order=order,
    )
    logger.info("order.declined", extra={"order_id": order.order_id, "reason": reason})


@transaction.atomic(durable=True)
def order_decide(
    *, order_pk: int, now: datetime | None = None, actor: AbstractBaseUser | None = None
) -> Order:
    """Decline, expire, leave for staff, or reserve and move to ``accepting`` (one transaction).

    ``actor`` is set when a staff user accepts an order in the ``staff`` manual policy.
    """
    now = now or timezone.now()
    order = order_lock(order_pk)
    if order.status != OrderStatus.RECEIVED:
        logger.info("order.decide_skipped", extra={"order_id": order.order_id, "status": order.status})
        return order
    if now >= order.accept_deadline:
        order.expire(at=now, by=actor, description="Not accepted within the order request window")
        order.save()
        return order
    # Paused declines every offer the node decides by itself, under every mode and policy (before the staff
    # policy leaves an offer waiting for staff: a paused node keeps nobody waiting).
    if actor is None and NodeControl.objects.filter(pk=1, paused=True).exists():
        _decline_locked(order, reason=DeclineReason.NODE_PAUSED, now=now, actor=None)
        return order
    if actor is None and runtime.current().staff_policy:
        order.accept_due_at = None  # staff accept or decline it from admin
        order.save(update_fields=["accept_due_at", "updated_at"])
        return order
    reason = order_decline_reason(order=order, now=now)
    if reason is not None:
        _decline_locked(order, reason=reason, now=now, actor=actor)
        return order
    try:
        balance_services.balance_reserve(order=order)  # refuses before writing anything
    except balance_services.InsufficientBalance:
        _decline_locked(order, reason=DeclineReason.INSUFFICIENT_BALANCE, now=now, actor=actor)
        return order
    order.begin_accept(by=actor, description="Reserved; accepting with the aggregator")
    order.save()
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    return order
