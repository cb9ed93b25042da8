"""Every write to an order: one function per business action, whatever triggers it.

Views, admin actions, tasks and commands call these. Each entry point runs in one transaction that
locks the order row first (``orders.locks.order_locked``), checks the transition on the locked row,
writes the ledger entries and outbox rows the transition implies, and queues the worker's next task in
the same transaction (``provision.queue``). No function here calls out over HTTP while it holds a lock:
the accept call happens between two transactions (``order_accept_with_aggregator``), and payouts are
sent by ``psp.services``.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from balances import services as balance_services
from orders import locks, outbox
from orders.clients.aggregator import (
    AcceptedOrder,
    AggregatorClient,
    AggregatorConfig,
    AggregatorRefused,
    AggregatorUnavailable,
    accepted_order_from,
    fulfil_payload,
)
from orders.dispatch import ORDER_TASK_OPTIONS
from orders.models import (
    PAYOUT_APPROVAL_STATES,
    DeclineReason,
    Flavour,
    Order,
    OrderStatus,
    OutboxKind,
    ReviewListEntry,
)
from provision import queue, request_context
from provision.errors import Conflict, NotFound
from provision.models import NodeControl

logger = logging.getLogger(__name__)

APPROVAL_TIMEOUT_REASON = "Payout not approved in time"
ACCEPT_SETTLE_MARGIN = timedelta(seconds=5)
SETTLE_LIST_PAGES = 5


class OrderTermsConflict(Conflict):
    code = "order_conflict"


class OrderTransitionNotAllowed(Conflict):
    code = "transition_not_allowed"


class OrderNotFound(NotFound):
    code = "order_not_found"


class SecondApproverRequired(Conflict):
    code = "second_approver_required"


class HoldExpired(OrderTransitionNotAllowed):
    code = "hold_expired"


# --- intake ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """An order offered by the aggregator, in either flavour, normalised."""

    order_id: str
    flavour: str
    amount: Decimal
    currency: str
    institution: str
    accept_deadline: datetime
    exclude_psps: list[str] = field(default_factory=list)
    reference: str = ""
    token: str = ""
    token_amount: str = ""
    network: str = ""
    account_identifier: str = ""
    account_name: str = ""
    memo: str = ""


def order_receive(*, offer: Offer) -> tuple[Order, bool]:
    """Store an offered order once; return (order, created).

    The same order id again returns the stored order (no second row, no second accept or payout).
    Raises OrderTermsConflict when the same id comes with different amount, currency or institution.

    The order is stored with one INSERT, its own transaction when called outside one (a request), and
    nothing else: the worker's dispatcher finds it and queues its task (``orders.dispatch``). In django-q2's
    sync mode (the test suite) there is no worker, and the task is queued, and run, here.
    """
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():  # a savepoint if nested
            order = Order.objects.create(
                order_id=offer.order_id,
                flavour=offer.flavour,
                amount=offer.amount,
                currency=offer.currency,
                institution=offer.institution,
                exclude_psps=offer.exclude_psps,
                reference=offer.reference,
                token=offer.token,
                token_amount=offer.token_amount,
                network=offer.network,
                account_identifier=offer.account_identifier,
                account_name=offer.account_name,
                memo=offer.memo,
                accept_deadline=offer.accept_deadline,
                request_id=request_context.bound_request_id(),
            )
    except IntegrityError:
        existing = Order.objects.filter(order_id=offer.order_id).first()
        if existing is None:
            raise
        if existing.terms() != (offer.amount, offer.currency, offer.institution):
            raise OrderTermsConflict(
                "An order with this id exists with different terms",
                errors={"orderId": ["Already received with a different amount, currency or institution."]},
            ) from None
        logger.info("order.offer_repeated", extra={"order_id": offer.order_id, "status": existing.status})
        return existing, False
    if queue.runs_inline():
        queue.enqueue(
            "orders.tasks.order_process",
            order_pk=order.pk,
            task_name=f"order_process:{order.pk}",
            q_options=ORDER_TASK_OPTIONS,
        )
    logger.info("order.received", extra={"order_id": order.order_id, "flavour": order.flavour})
    return order, True


# --- deciding and accepting ----------------------------------------------------------------------------


def _limit(table: dict[str, Decimal], currency: str) -> Decimal | None:
    return table.get(currency, table.get("*"))


def order_decline_reason(*, order: Order, now: datetime) -> str | None:
    """The rule that refuses this order, or None when the node can take it (balance checked at reserve)."""
    from psp import services as psp_services

    if now >= order.accept_deadline:
        return DeclineReason.ORDER_EXPIRED
    if order.currency not in settings.CURRENCIES:
        return DeclineReason.UNSUPPORTED_CURRENCY
    minimum = _limit(settings.MIN_ORDER_AMOUNT, order.currency)
    if minimum is not None and order.amount < minimum:
        return DeclineReason.AMOUNT_BELOW_MINIMUM
    maximum = _limit(settings.MAX_ORDER_AMOUNT, order.currency)
    if maximum is not None and order.amount > maximum:
        return DeclineReason.AMOUNT_ABOVE_MAXIMUM
    able, healthy = psp_services.psp_payable(
        currency=order.currency, institution=order.institution, exclude=order.exclude_psps
    )
    if not able:
        return DeclineReason.UNSUPPORTED_INSTITUTION
    if not healthy:
        return DeclineReason.PSP_UNAVAILABLE
    return None


def _needs_staff_approval(order: Order) -> bool:
    """Manual mode, an amount above MANUAL_REVIEW_ABOVE, or a recipient on the review list."""
    if settings.PROVISION_MODE == "manual":
        return True
    threshold = _limit(settings.MANUAL_REVIEW_ABOVE, order.currency)
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
    order = locks.lock_order(order_pk)
    if order.status != OrderStatus.RECEIVED:
        logger.info("order.decide_skipped", extra={"order_id": order.order_id, "status": order.status})
        return order
    if now >= order.accept_deadline:
        order.expire(at=now, by=actor, description="Not accepted within the order request window")
        order.save()
        return order
    if actor is None and settings.PROVISION_MODE == "manual" and settings.MANUAL_POLICY == "staff":
        return order  # staff accept or decline it from admin
    if actor is None and NodeControl.objects.filter(pk=1, paused=True).exists():
        _decline_locked(order, reason=DeclineReason.NODE_PAUSED, now=now, actor=None)
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
    order = locks.lock_order(order_pk)
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
    order = locks.lock_order(order_pk)
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
    order = locks.lock_order(order_pk)
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
            until=now + timedelta(seconds=settings.MANUAL_APPROVAL_TIMEOUT), description="Amount mismatch"
        )
        order.save()
        return order
    if not order.account_identifier:
        order.save()
        order.hold(
            until=now + timedelta(seconds=settings.MANUAL_APPROVAL_TIMEOUT), description="No recipient"
        )
        order.save()
        return order
    order.save()
    if _needs_staff_approval(order):
        order.hold(
            until=now + timedelta(seconds=settings.MANUAL_APPROVAL_TIMEOUT),
            description="Held for staff approval",
        )
        order.save()
    else:
        _kick_payout(order.pk)
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


def _kick_payout(order_pk: int) -> None:
    queue.enqueue(
        "orders.tasks.order_start_payout",
        order_pk=order_pk,
        task_name=f"order_payout:{order_pk}",
        deferrable=True,
    )


@transaction.atomic(durable=True)
def order_apply_accept_refused(*, order_pk: int, reason: str, now: datetime | None = None) -> Order:
    """The aggregator says the order is not ours: release the reservation; never pay."""
    now = now or timezone.now()
    order = locks.lock_order(order_pk)
    if order.status != OrderStatus.ACCEPTING:
        return order
    balance_services.balance_release(order=order, reason=reason)
    order.accept_refused(at=now, description=reason[:255])
    order.save()
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    logger.warning("order.accept_refused", extra={"order_id": order.order_id, "reason": reason[:200]})
    return order


# --- paying ----------------------------------------------------------------------------------------


def order_check_payout_allowed(*, order: Order, actor: AbstractBaseUser | None) -> None:
    """Maker-checker: a staff "paid" above MAKER_CHECKER_ABOVE needs an approval by another user first.

    The one rule for every staff path that ends in ``paid``: pay via PSP (``psp.services.payout_start``),
    bank-file export and the pain.002 success lines that settle it (``orders.iso20022``), mark paid and
    resolve a review as paid. Each calls it on the locked order before it writes anything. The approval
    (``approved_by``) is recorded by ``order_approve_payout``. Automatic payouts (no actor) pass.
    Raises SecondApproverRequired.
    """
    threshold = _limit(settings.MAKER_CHECKER_ABOVE, order.currency)
    if actor is None or threshold is None or order.amount <= threshold:
        return
    if order.approved_by_id is None:
        raise SecondApproverRequired(
            f"Payouts above {threshold} {order.currency} need an approval first, then a second user to pay",
            order_id=order.order_id,
        )
    if order.approved_by_id == actor.pk:
        raise SecondApproverRequired(
            "The user who approved this payout cannot also pay it: a second user must pay",
            order_id=order.order_id,
        )


def order_check_hold_open(*, order: Order, now: datetime) -> None:
    """Refuse to pay a held order past its approval deadline, whether or not the timeout has run yet.

    Called on the locked order by the paths that send money from the node (``psp.services.payout_start``,
    ``orders.iso20022.bank_file_export``); ``order_expire_due`` cancels such an order under the same lock.
    Raises HoldExpired.
    """
    if order.hold_expired(now=now):
        raise HoldExpired(
            "The approval deadline of this held order has passed: it is cancelled, not paid",
            order_id=order.order_id,
            hold_until=order.hold_until.isoformat() if order.hold_until else None,
        )


@transaction.atomic(durable=True)
def order_approve_payout(*, order_pk: int, actor: AbstractBaseUser) -> Order:
    """Record a staff approval to pay the order (the "maker" half of maker-checker).

    Allowed in every state a staff "paid" path starts from (``PAYOUT_APPROVAL_STATES``: accepted, held,
    needs review); the admin offers it to users with the approve permission. Not while paying, so the
    approval a pain.002 import is checked against cannot change under it. A later approval replaces an
    earlier one: either way the user who then pays must be someone else.
    Raises OrderNotFound, OrderTransitionNotAllowed.
    """
    order = _locked_or_404(order_pk)
    if order.status not in PAYOUT_APPROVAL_STATES:
        raise _refuse(order, "approve the payout of")
    order.approved_by = actor  # type: ignore[assignment]
    order.save(update_fields=["approved_by", "updated_at"])
    logger.info("order.payout_approved", extra={"order_id": order.order_id, "by": actor.pk})
    return order


def order_start_payout(*, order_pk: int, actor: AbstractBaseUser | None = None) -> Order:
    """Create the payout (a Transfer row) and move to ``paying``; the PSP is called after commit."""
    from psp import services as psp_services

    return psp_services.payout_start(order_pk=order_pk, actor=actor)


def _report_fulfil(order: Order, *, validation_status: str, validation_error: str = "") -> None:
    """Enqueue fulfil ``pending`` (once) and, for a final status, the final fulfil after it."""
    tx_id = order.psp_tx_id
    statuses = ["pending"] if validation_status == "pending" else ["pending", validation_status]
    keys = {status: f"fulfil:{order.order_id}:{status}" for status in statuses}
    present = outbox.outbox_keys_present(list(keys.values()))
    for status, key in keys.items():
        if key in present:
            logger.debug("outbox.enqueue_repeat", extra={"dedupe_key": key})
            continue
        outbox.outbox_enqueue(
            kind=OutboxKind.FULFIL,
            dedupe_key=key,
            path=f"orders/{order.order_id}/fulfill",
            payload=fulfil_payload(
                order.psp, tx_id, status, validation_error if status == validation_status else ""
            ),
            order=order,
            absent=True,
        )


def order_record_payout_pending(*, order: Order, tx_id: str) -> None:
    """The PSP has the transfer: fix the order's txId and report fulfil ``pending``. Caller holds the lock."""
    if not order.psp_tx_id:
        order.psp_tx_id = tx_id
        order.save(update_fields=["psp_tx_id", "updated_at"])
    _report_fulfil(order, validation_status="pending")


def order_record_payout_succeeded(
    *, order: Order, tx_id: str, now: datetime, actor: AbstractBaseUser | None = None
) -> None:
    """Paying -> paid: debit the reservation, report fulfil success. Caller holds the order lock."""
    if not order.psp_tx_id:
        order.psp_tx_id = tx_id
    order.payout_succeeded(at=now, by=actor, description=f"{order.psp} reports success ({tx_id})")
    order.save()
    balance_services.balance_debit(order=order, psp=order.psp)
    _report_fulfil(order, validation_status="success")
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    logger.info("order.paid", extra={"order_id": order.order_id, "psp": order.psp})


def order_record_payout_failed(*, order: Order, reason: str, tx_id: str, now: datetime) -> None:
    """Paying -> cancelled after a transfer was attempted and failed: release; fulfil ``failed``."""
    if not order.psp_tx_id:
        order.psp_tx_id = tx_id
    order.payout_failed(reason=reason, at=now, description=reason[:255])
    order.save()
    balance_services.balance_release(order=order, reason=f"payout failed: {reason}")
    _report_fulfil(order, validation_status="failed", validation_error=reason)
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    logger.warning("order.payout_failed", extra={"order_id": order.order_id, "reason": reason[:200]})


def _cancel_locked(order: Order, *, reason: str, now: datetime, actor: AbstractBaseUser | None) -> None:
    order.cancel(reason=reason, at=now, by=actor, description=reason[:255])
    order.save()
    balance_services.balance_release(order=order, reason=f"cancelled: {reason}")
    outbox.outbox_enqueue(
        kind=OutboxKind.CANCEL,
        dedupe_key=f"cancel:{order.order_id}",
        path=f"orders/{order.order_id}/cancel",
        payload={"reason": reason},
        order=order,
    )
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    logger.info("order.cancelled", extra={"order_id": order.order_id, "reason": reason[:200]})


def order_record_no_payout_possible(*, order: Order, reason: str, now: datetime) -> None:
    """Every PSP refused before taking money: back from paying and cancel with the reason."""
    order.payout_refused(description=reason[:255])
    order.save()
    _cancel_locked(order, reason=reason, now=now, actor=None)


# --- staff and timers --------------------------------------------------------------------------------


def _locked_or_404(order_pk: int) -> Order:
    order = locks.order_locked().filter(pk=order_pk).first()
    if order is None:
        raise OrderNotFound("No such order", order_pk=order_pk)
    return order


def _refuse(order: Order, action: str) -> OrderTransitionNotAllowed:
    return OrderTransitionNotAllowed(
        f"Cannot {action} an order that is {order.get_status_display().lower()}",
        order_id=order.order_id,
        status=order.status,
    )


@transaction.atomic(durable=True)
def order_decline(
    *, order_pk: int, reason: str, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Order:
    """Staff decline an order still in ``received``."""
    now = now or timezone.now()
    order = _locked_or_404(order_pk)
    if not can_proceed(order.decline):
        raise _refuse(order, "decline")
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
    order = _locked_or_404(order_pk)
    if not can_proceed(order.cancel):
        raise _refuse(order, "cancel")
    _cancel_locked(order, reason=reason, now=now, actor=actor)
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
    order = _locked_or_404(order_pk)
    if not can_proceed(order.mark_paid):
        raise _refuse(order, "mark paid")
    order_check_payout_allowed(order=order, actor=actor)
    order.mark_paid(
        external_reference=external_reference, at=now, by=actor, description="Paid outside the node"
    )
    order.save()
    balance_services.balance_debit(order=order, psp="manual")
    _report_fulfil(order, validation_status="success")
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
    order = _locked_or_404(order_pk)
    if order.status != OrderStatus.NEEDS_REVIEW:
        raise _refuse(order, "resolve")
    if paid:
        order_check_payout_allowed(order=order, actor=actor)
    if not order.psp_tx_id:
        order.psp_tx_id = (
            order.transfers.order_by("-attempt").values_list("reference", flat=True).first() or ""
        )
    if paid:
        order.resolve_paid(at=now, by=actor, description=evidence)
        order.save()
        balance_services.balance_debit(order=order, psp=order.psp)
        _report_fulfil(order, validation_status="success")
    else:
        order.resolve_not_paid(reason=evidence, at=now, by=actor, description=evidence)
        order.save()
        balance_services.balance_release(order=order, reason=f"review: not paid: {evidence}")
        _report_fulfil(order, validation_status="failed", validation_error=evidence)
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    return order


def order_record_fulfil_reported(*, order_pk: int, now: datetime | None = None) -> None:
    """The aggregator took fulfil ``success``: paid -> fulfilled (also the sweep's catch-up)."""
    with transaction.atomic():
        order_record_fulfil_reported_locked(order=locks.lock_order(order_pk), now=now)


def order_record_fulfil_reported_locked(*, order: Order, now: datetime | None = None) -> None:
    """paid -> fulfilled for an order whose row lock the caller holds; a repeat is logged, not an error."""
    if order.status != OrderStatus.PAID:
        logger.info(
            "order.fulfil_reported_repeat", extra={"order_id": order.order_id, "status": order.status}
        )
        return
    order.fulfil_reported(at=now or timezone.now(), description="Aggregator confirmed fulfil success")
    order.save()


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
            order = locks.lock_order(pk)
            if order.status == OrderStatus.RECEIVED and order.accept_deadline <= now:
                order.expire(at=now, description="Not accepted within the order request window")
                order.save()
                count += 1
    for pk in Order.objects.filter(status=OrderStatus.HELD, hold_until__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            order = locks.lock_order(pk)
            if order.hold_expired(now=now):
                _cancel_locked(order, reason=APPROVAL_TIMEOUT_REASON, now=now, actor=None)
                count += 1
    return count


def offer_from_seed(data: dict[str, Any]) -> Offer:
    """Normalise a validated seed-flavour body (POST /orders)."""
    recipient = data["recipient"]
    return Offer(
        order_id=data["orderId"],
        flavour=Flavour.SEED,
        amount=data["amount"],
        currency=data["currency"],
        institution=recipient["institution"],
        accept_deadline=data["expiresAt"],
        reference=data.get("reference", ""),
        token=data.get("token", ""),
        token_amount=str(data.get("tokenAmount", "")),
        network=data.get("network", ""),
        account_identifier=recipient["accountIdentifier"],
        account_name=recipient.get("accountName", ""),
        memo=recipient.get("memo", ""),
    )
