"""What staff do to an order from the admin (and the timers that stand in for them): approve, decline,
cancel, mark paid, resolve a review; expire offers and held payouts past their deadlines."""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from balances import services as balance_services
from orders.models import PAYOUT_APPROVAL_STATES, DeclineReason, Order, OrderStatus, OutboxKind
from orders.services import outbox
from orders.services.common import (
    cancel_locked,
    order_check_payout_allowed,
    order_lock,
    refuse,
    report_fulfil,
)

logger = logging.getLogger(__name__)

APPROVAL_TIMEOUT_REASON = "Payout not approved in time"


def _record_approver(order: Order, actor: AbstractBaseUser | None) -> None:
    """A staff "paid" by ``actor`` with no earlier approval on record: ``actor`` approved it (as a payout
    started from admin does). An earlier approval (the maker of maker-checker) stays. Caller holds the
    lock."""
    if actor is not None and order.approved_by_id is None:
        order.approved_by = actor  # type: ignore[assignment]


@transaction.atomic(durable=True)
def order_approve_payout(*, order_pk: int, actor: AbstractBaseUser) -> Order:
    """Record a staff approval to pay the order (the "maker" half of maker-checker).

    Allowed in every state a staff "paid" path starts from (``PAYOUT_APPROVAL_STATES``: accepted, held,
    needs review); the admin offers it to users with the approve permission. Not while paying, so the
    approval a pain.002 import is checked against cannot change under it. A later approval replaces an
    earlier one: either way the user who then pays must be someone else.
    Raises OrderNotFound, OrderTransitionNotAllowed.
    """
    order = order_lock(order_pk)
    if order.status not in PAYOUT_APPROVAL_STATES:
        raise refuse(order, "approve the payout of")
    order.approved_by = actor  # type: ignore[assignment]
    order.save(update_fields=["approved_by", "updated_at"])
    logger.info("order.payout_approved", extra={"order_id": order.order_id, "by": actor.pk})
    return order


@transaction.atomic(durable=True)
def order_decline(
    *, order_pk: int, reason: str, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Order:
    """Staff decline an order still in ``received``."""
    now = now or timezone.now()
    order = order_lock(order_pk)
    if not can_proceed(order.decline):
        raise refuse(order, "decline")
    order.decline(reason=DeclineReason.STAFF_DECLINED, at=now, by=actor, description=reason)
    order.save()
    outbox.outbox_enqueue(
        kind=OutboxKind.DECLINE,
        dedupe_key=f"decline:{order.order_id}",
        path=f"orders/{order.order_id}/decline",
        payload={"reason": reason},
        order=order,
    )
    return order


@transaction.atomic(durable=True)
def order_cancel(
    *, order_pk: int, reason: str, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Order:
    """Cancel an accepted, unpaid order: release the reservation and tell the aggregator."""
    now = now or timezone.now()
    order = order_lock(order_pk)
    if not can_proceed(order.cancel):
        raise refuse(order, "cancel")
    cancel_locked(order, reason=reason, now=now, actor=actor)
    return order


@transaction.atomic(durable=True)
def order_mark_paid(
    *, order_pk: int, external_reference: str, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Order:
    """Staff paid the recipient outside the node: debit and report fulfil with the external reference.

    Still allowed after a held order's approval deadline (``hold_until``), unlike a payout from the node:
    staff attest that the money already left, and refusing would let the approval timeout report a
    cancel for an order that was paid. The timeout (``order_expire_due``) takes the same order lock and
    re-reads the state, so it never cancels an order marked paid, and this refuses one it cancelled.
    Raises OrderNotFound, OrderTransitionNotAllowed, SecondApproverRequired (maker-checker).
    """
    now = now or timezone.now()
    order = order_lock(order_pk)
    if not can_proceed(order.mark_paid):
        raise refuse(order, "mark paid")
    order_check_payout_allowed(order=order, actor=actor)
    _record_approver(order, actor)
    order.mark_paid(
        external_reference=external_reference, at=now, by=actor, description="Paid outside the node"
    )
    order.save()
    balance_services.balance_debit(
        order=order, psp="manual", actor=actor, reason=f"paid outside the node: {external_reference}"
    )
    report_fulfil(order, validation_status="success")
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    return order


@transaction.atomic(durable=True)
def order_resolve_review(
    *, order_pk: int, paid: bool, evidence: str, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Order:
    """Staff settle a ``needs_review`` payout: paid (debit, fulfil success) or not paid (release, failed).

    Paid goes through maker-checker like every staff "paid"; not paid (a release) does not.
    Raises OrderNotFound, OrderTransitionNotAllowed, SecondApproverRequired.
    """
    now = now or timezone.now()
    order = order_lock(order_pk)
    if order.status != OrderStatus.NEEDS_REVIEW:
        raise refuse(order, "resolve")
    if paid:
        order_check_payout_allowed(order=order, actor=actor)
    if not order.psp_tx_id:
        order.psp_tx_id = (
            order.transfers.order_by("-attempt").values_list("reference", flat=True).first() or ""
        )
    if paid:
        _record_approver(order, actor)
        order.resolve_paid(at=now, by=actor, description=evidence)
        order.save()
        balance_services.balance_debit(
            order=order, psp=order.psp, actor=actor, reason=f"review: paid: {evidence}"
        )
        report_fulfil(order, validation_status="success")
    else:
        order.resolve_not_paid(reason=evidence, at=now, by=actor, description=evidence)
        order.save()
        balance_services.balance_release(order=order, reason=f"review: not paid: {evidence}", actor=actor)
        report_fulfil(order, validation_status="failed", validation_error=evidence)
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    return order


@transaction.atomic(durable=True)
def order_close_reversal(
    *, order_pk: int, evidence: str, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Order:
    """Staff settled a payout the PSP reversed (with the aggregator, outside the node): close the order.

    The money is already booked back (at the reversal); nothing is reported to the aggregator here.
    Raises OrderNotFound, OrderTransitionNotAllowed.
    """
    now = now or timezone.now()
    order = order_lock(order_pk)
    if not can_proceed(order.close_reversal):
        raise refuse(order, "close the reversal of")
    reason = f"Payout reversed by the PSP; {evidence}"[:255]
    order.close_reversal(reason=reason, at=now, by=actor, description=evidence[:255])
    order.save()
    return order


def order_expire_due(*, now: datetime | None = None) -> int:
    """Expire received orders past their window; cancel held payouts past their approval timeout.

    Each order is decided on its locked row, so a cancel never races a staff mark paid. Until this runs,
    a payout from the node refuses a held order past its deadline (``order_check_hold_open``).
    """
    now = now or timezone.now()
    count = 0
    for pk in Order.objects.filter(status=OrderStatus.RECEIVED, accept_deadline__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            order = order_lock(pk)
            if order.status == OrderStatus.RECEIVED and order.accept_deadline <= now:
                order.expire(at=now, description="Not accepted within the order request window")
                order.save()
                count += 1
    for pk in Order.objects.filter(status=OrderStatus.HELD, hold_until__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            order = order_lock(pk)
            if order.hold_expired(now=now):
                cancel_locked(order, reason=APPROVAL_TIMEOUT_REASON, now=now, actor=None)
                count += 1
    return count
