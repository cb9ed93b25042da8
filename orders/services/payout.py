"""Paying an order: start the payout at a PSP, and make the order follow what its transfer's PSP answers.

``order_start_payout`` picks a healthy PSP and writes the transfer in the transaction that moves the order
to ``paying`` (the payout lane sends it). With ``PAYOUT_NAME_CHECK`` on, the account is resolved through
that PSP first, before the order is locked (an HTTP call: never under a lock).

``order_apply_psp_answer`` records a PSP's answer about a transfer (``psp.services.transfer_record``)
and applies the change to the order in the same transaction, under the order's lock then the transfer's.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from balances import services as balance_services
from orders.models import Order, OrderStatus
from orders.services import outbox
from orders.services.common import (
    cancel_locked,
    order_check_hold_open,
    order_check_payout_allowed,
    order_lock,
    refuse,
    report_fulfil,
)
from provision import runtime
from psp import services as psp_services
from psp.name_check import NameCheck, name_check_log

logger = logging.getLogger(__name__)

# The payout lane's claim on an order due to start its payout (the start makes it due again or clears it).
PAYOUT_CLAIM = timedelta(seconds=90)


def order_start_payout(*, order_pk: int, actor: AbstractBaseUser | None = None) -> Order:
    """Pick a PSP, write the transfer, move the order to ``paying``; or hold it when the name check says so.

    Raises OrderTransitionNotAllowed (HoldExpired: a held order past ``hold_until``), SecondApproverRequired
    (maker-checker), NoPspAvailable.
    """
    order = Order.objects.get(pk=order_pk)
    check = None
    if can_proceed(order.start_payout) and settings.PAYOUT_NAME_CHECK != "off":
        refused, _ = psp_services.transfers_of(order=order)
        check = psp_services.payout_name_check(order=order, exclude=[*order.exclude_psps, *refused])
    return _start_payout_locked(order_pk=order_pk, actor=actor, check=check)


@transaction.atomic(durable=True)
def _start_payout_locked(*, order_pk: int, actor: AbstractBaseUser | None, check: NameCheck | None) -> Order:
    now = timezone.now()
    order = order_lock(order_pk)
    if not can_proceed(order.start_payout):
        raise refuse(order, "pay")
    order_check_hold_open(order=order, now=now)
    order_check_payout_allowed(order=order, actor=actor)
    if check is not None:
        hold = check.holds(mode=settings.PAYOUT_NAME_CHECK) and order.status == OrderStatus.ACCEPTED
        name_check_log(check=check, order=order, held=hold)
        if hold:
            order.hold(
                until=now + timedelta(seconds=runtime.current().manual_approval_timeout),
                by=actor,
                description=check.description(expected=order.account_name),
            )
            order.save()
            return order
    refused, attempts = psp_services.transfers_of(order=order)
    adapter = psp_services.psp_pick(
        currency=order.currency,
        institution=order.institution,
        exclude=[*order.exclude_psps, *refused],
        amount=order.amount,
    )
    transfer = psp_services.transfer_create(
        order=order,
        adapter=adapter,
        attempt=attempts + 1,
        psp_institution=psp_services.psp_institution_code(psp=adapter.name, institution=order.institution),
    )
    description = "Payout approved" if order.status == OrderStatus.HELD else "Payout started"
    if actor is not None and order.approved_by_id is None:
        order.approved_by = actor  # type: ignore[assignment]
    order.start_payout(psp=adapter.name, by=actor, description=f"{description} via {adapter.name}")
    order.save()
    logger.info(
        "payout.started",
        extra={"order_id": order.order_id, "psp": adapter.name, "reference": transfer.reference},
    )
    return order


@transaction.atomic
def orders_claim_payout_due(*, limit: int, now: datetime | None = None) -> list[int]:
    """Claim up to ``limit`` accepted orders whose payout is due to start (skipping rows another payout
    lane holds), for ``PAYOUT_CLAIM``."""
    now = now or timezone.now()
    pks = list(
        Order.objects.select_for_update(skip_locked=True)
        .filter(status=OrderStatus.ACCEPTED, payout_due_at__lte=now)
        .order_by("payout_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    if pks:
        Order.objects.filter(pk__in=pks).update(payout_due_at=now + PAYOUT_CLAIM)
    return pks


@transaction.atomic(durable=True)
def order_payout_later(*, order_pk: int, when: datetime) -> Order:
    """No PSP can take the payout now (every circuit open): try again at ``when``."""
    order = order_lock(order_pk)
    if order.status == OrderStatus.ACCEPTED:
        order.payout_due_at = when
        order.save(update_fields=["payout_due_at", "updated_at"])
    return order


@transaction.atomic(durable=True)
def order_apply_psp_answer(
    *, transfer_pk: int, answer: psp_services.PspAnswer, actor: AbstractBaseUser | None = None
) -> Order:
    """Record what the PSP answered about the transfer and make its order follow (one transaction, the
    order locked before the transfer). ``actor``: the staff user who brought the answer (a pain.002
    import), recorded in the transition log and on the ledger entry; None for the PSP's own answers."""
    order_pk = psp_services.transfer_order_pk(transfer_pk=transfer_pk)
    order = order_lock(order_pk)
    transfer = psp_services.transfer_lock(transfer_pk)
    change = psp_services.transfer_record(transfer=transfer, answer=answer)
    if change.change == psp_services.Change.NONE:
        return order
    if change.change == psp_services.Change.REVERSED:
        _reversed(order, change=change, psp=transfer.psp)
        return order
    if order.status != OrderStatus.PAYING:
        if change.change != psp_services.Change.PENDING:
            logger.warning(
                "payout.answer_for_order_not_paying",
                extra={"order_id": order.order_id, "status": order.status, "change": change.change},
            )
        return order
    _follow(order, change=change, psp=transfer.psp, actor=actor)
    return order


def _follow(
    order: Order, *, change: psp_services.TransferChange, psp: str, actor: AbstractBaseUser | None
) -> None:
    now = timezone.now()
    if change.tx_id and not order.psp_tx_id:
        order.psp_tx_id = change.tx_id
    kind = change.change
    if kind == psp_services.Change.PENDING:
        order.save(update_fields=["psp_tx_id", "updated_at"])
        report_fulfil(order, validation_status="pending")
    elif kind == psp_services.Change.SUCCEEDED:
        order.payout_succeeded(at=now, by=actor, description=f"{order.psp} reports success ({change.tx_id})")
        order.save()
        balance_services.balance_debit(order=order, psp=order.psp, actor=actor)
        report_fulfil(order, validation_status="success")
        outbox.outbox_enqueue_balance_report(currency=order.currency)
        logger.info("order.paid", extra={"order_id": order.order_id, "psp": order.psp})
    elif kind == psp_services.Change.FAILED:
        reason = change.reason[:255]
        order.payout_failed(reason=reason, at=now, by=actor, description=reason)
        order.save()
        balance_services.balance_release(order=order, reason=f"payout failed: {reason}", actor=actor)
        report_fulfil(order, validation_status="failed", validation_error=reason)
        outbox.outbox_enqueue_balance_report(currency=order.currency)
        logger.warning("order.payout_failed", extra={"order_id": order.order_id, "reason": reason[:200]})
    elif kind == psp_services.Change.REJECTED:
        _fail_over_or_cancel(order, change=change, psp=psp, now=now)
    elif kind == psp_services.Change.REVIEW:
        if change.tx_id:
            order.save(update_fields=["psp_tx_id", "updated_at"])
        order.payout_unknown(description=change.reason[:255])
        order.save()
        logger.warning("order.needs_review", extra={"order_id": order.order_id, "why": change.reason[:200]})


def _reversed(order: Order, *, change: psp_services.TransferChange, psp: str) -> None:
    """The PSP took back a payout it had made. The money is in the account again (a credit), the order
    waits for staff (``reversed``), and nothing is ever sent again by itself: the transfer stays the
    order's live one. Staff resolve it with the aggregator and close it (``order_close_reversal``)."""
    if order.status not in (OrderStatus.PAID, OrderStatus.FULFILLED):
        logger.error(
            "payout.reversed_order_not_paid", extra={"order_id": order.order_id, "status": order.status}
        )
        return
    order.payout_reversed(description=f"{psp} reversed the payout: {change.reason}"[:255])
    order.save()
    balance_services.balance_reversal(order=order, psp=psp)
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    logger.error("order.payout_reversed", extra={"order_id": order.order_id, "psp": psp})


def _fail_over_or_cancel(
    order: Order, *, change: psp_services.TransferChange, psp: str, now: datetime
) -> None:
    """The PSP refused before money could move: the next PSP may try, or the order is cancelled."""
    refused, _ = psp_services.transfers_of(order=order)
    others = psp_services.route(
        currency=order.currency,
        institution=order.institution,
        exclude=[*order.exclude_psps, *refused],
        amount=order.amount,
    )
    if others and not change.recipient_invalid:
        order.payout_refused(description=f"{psp} refused: {change.reason[:200]}; failing over")
        order.payout_due_at = now  # the payout lane starts the next attempt
        order.save()
        return
    reason = (
        "Invalid recipient bank details" if change.recipient_invalid else f"Payout refused: {change.reason}"
    )
    order.payout_refused(description=reason[:255])
    order.save()
    cancel_locked(order, reason=reason[:255], now=now, actor=None)
