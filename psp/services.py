"""Payouts: start at most once per order, send with a derived reference, learn the outcome.

Rules (DESIGN.md "Failure rules"):
* ``payout_start`` writes the Transfer row (unique per order while live) and moves the order to
  ``paying`` in one transaction; the PSP is called after commit, never under a lock.
* ``transfer_send`` counts the send *before* calling the PSP. A transfer that was sent before (a crash
  or a timeout) is looked up by reference first; only "the PSP has nothing" allows sending again, with
  the same reference, which the PSP refuses as a duplicate if it did land after all.
* A definitive refusal before money moved lets the next PSP try (failover); an unknown outcome never
  does. An answer the node cannot interpret, or a PSP that stays unreachable past
  ``PAYOUT_REVIEW_AFTER``, sends the order to ``needs_review``.
* New payouts go only to PSPs that are healthy (``psp.health``: circuit breaker and failure-rate window);
  look-ups of existing transfers always go to their own PSP.
* Every adapter call goes through ``health.observed_call`` (metrics + circuit breaker).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from balances.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from orders import locks as order_locks
from orders import services as order_services
from orders.models import Order, OrderStatus
from provision import queue
from provision.logging import mask_account, redact_payload
from psp import health, registry
from psp.base import (
    DuplicateReference,
    FailureReason,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
    PspAdapter,
    PspBalanceReading,
    PspError,
    PspRejected,
    PspUnavailable,
    Recipient,
)
from psp.models import CircuitState, InstitutionMapping, Transfer, TransferStatus
from psp.name_check import NameCheck, name_check_enabled, name_check_log, name_check_run

logger = logging.getLogger(__name__)

T = TypeVar("T")

PAYOUT_REVIEW_AFTER = timedelta(minutes=15)
CHECK_BACKOFF_CAP = timedelta(seconds=60)
SEND_GRACE = timedelta(seconds=30)
# No second send of a transfer starts while an earlier one may still be waiting for the PSP's answer:
# longer than any PSP client's connect + read timeout.
SEND_LEASE = timedelta(seconds=60)


class NoPspAvailable(order_services.OrderTransitionNotAllowed):
    code = "no_psp_available"


# --- routing -----------------------------------------------------------------------------------------


_memo: contextvars.ContextVar[dict[tuple[str, ...], Any] | None] = contextvars.ContextVar(
    "psp_routing_memo", default=None
)


@contextmanager
def routing_memo() -> Iterator[None]:
    """Within, PSP health and institution codes are read once and reused: for one worker task that decides
    an order and starts its payout moments apart. Forgotten as soon as a PSP fails inside (``_forget``)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _remembered(key: tuple[str, ...], read: Callable[[], T]) -> T:
    memo = _memo.get()
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return cast(T, memo[key])


def _forget() -> None:
    memo = _memo.get()
    if memo is not None:
        memo.clear()


def _psp_code(psp: str, institution: str) -> str:
    def read() -> str:
        row = InstitutionMapping.objects.filter(psp=psp, institution=institution, enabled=True).first()
        return row.psp_code if row else ""

    return _remembered(("code", psp, institution), read)


# PSPs that cannot pay without their own code for the institution (Lenco v1 pays NGN by NIP bank code).
NEEDS_MAPPING = {("lenco", "NGN")}


def route(
    *,
    currency: str,
    institution: str,
    exclude: list[str] | tuple[str, ...] = (),
    now: datetime | None = None,
) -> list[PspAdapter]:
    """The adapters that may take a NEW payout of this order, in routing order.

    Leaves out excluded PSPs, PSPs that cannot pay the currency/institution, and unhealthy ones (open
    circuit, failure-rate window: ``psp.health``). Never used to look up an existing transfer.
    """
    able = _able(currency=currency, institution=institution, exclude=exclude)
    return [adapter for adapter, _state in _healthy(able, now)]


def _able(*, currency: str, institution: str, exclude: list[str] | tuple[str, ...]) -> list[PspAdapter]:
    return [
        adapter
        for adapter in registry.enabled()
        if adapter.name not in exclude
        and adapter.supports(currency=currency, institution=institution)
        and ((adapter.name, currency) not in NEEDS_MAPPING or _psp_code(adapter.name, institution))
    ]


def _healthy(able: list[PspAdapter], now: datetime | None) -> list[tuple[PspAdapter, health.PspHealth]]:
    if not able:
        return []
    names = [adapter.name for adapter in able]
    states = _remembered(("health", *names), lambda: health.psp_health(psps=names, now=now))
    return [(adapter, states[adapter.name]) for adapter in able if states[adapter.name].takes_new_payouts]


def psp_payable(
    *, currency: str, institution: str, exclude: list[str] | tuple[str, ...] = ()
) -> tuple[bool, bool]:
    """(some enabled PSP can pay this at all, one of those takes new payouts now), in one routing pass."""
    able = _able(currency=currency, institution=institution, exclude=exclude)
    return bool(able), bool(_healthy(able, None))


# --- starting a payout ---------------------------------------------------------------------------------


def _kick_send(transfer_pk: int) -> None:
    queue.enqueue(
        "psp.tasks.transfer_send",
        transfer_pk=transfer_pk,
        task_name=f"transfer_send:{transfer_pk}",
        deferrable=True,
    )


def _tried_psps(order: Order) -> list[str]:
    return _tried_and_attempts(order)[0]


def _tried_and_attempts(order: Order) -> tuple[list[str], int]:
    """The PSPs a new payout of this order must avoid (excluded, or refused it already) and how many
    transfers it has had: one query."""
    transfers = list(order.transfers.values_list("psp", "status"))
    rejected = [psp for psp, status in transfers if status == TransferStatus.REJECTED]
    return [*order.exclude_psps, *rejected], len(transfers)


def payout_start(*, order_pk: int, actor: AbstractBaseUser | None = None) -> Order:
    """Pick a PSP, write the Transfer, move the order to ``paying``; or hold it when the name check says so.

    With ``PAYOUT_NAME_CHECK`` on, the account is resolved through the PSP about to be used *before* the
    order is locked (``psp.name_check``); the locked part re-checks the state and acts on the verdict.
    Raises OrderTransitionNotAllowed (NoPspAvailable, HoldExpired: a held order past ``hold_until``, even
    when the approval timeout has not cancelled it yet), SecondApproverRequired.
    """
    check = _name_check(order_pk)
    return _payout_start_locked(order_pk=order_pk, actor=actor, check=check)


def _name_check(order_pk: int) -> NameCheck | None:
    """Resolve and compare the recipient's name, unlocked; None when the check does not apply."""
    if settings.PAYOUT_NAME_CHECK == "off":
        return None
    order = Order.objects.get(pk=order_pk)
    if not name_check_enabled(order) or order.status not in (OrderStatus.ACCEPTED, OrderStatus.HELD):
        return None
    candidates = route(currency=order.currency, institution=order.institution, exclude=_tried_psps(order))
    if not candidates:
        return None  # the locked part raises NoPspAvailable
    adapter = candidates[0]
    return name_check_run(
        order=order, adapter=adapter, psp_institution=_psp_code(adapter.name, order.institution)
    )


def _claim(candidates: list[tuple[PspAdapter, health.PspHealth]]) -> PspAdapter | None:
    """The first candidate whose circuit lets a new payout through (claiming a recovering one's probe;
    a circuit that was closed when routing read it needs no claim)."""
    for adapter, state in candidates:
        if state.circuit == CircuitState.CLOSED or health.circuit_claim_probe(psp=adapter.name):
            return adapter
    return None


@transaction.atomic(durable=True)
def _payout_start_locked(*, order_pk: int, actor: AbstractBaseUser | None, check: NameCheck | None) -> Order:
    order = order_locks.lock_order(order_pk)
    if not can_proceed(order.start_payout):
        raise order_services.OrderTransitionNotAllowed(
            f"Cannot pay an order that is {order.get_status_display().lower()}",
            order_id=order.order_id,
            status=order.status,
        )
    order_services.order_check_hold_open(order=order, now=timezone.now())
    order_services.order_check_payout_allowed(order=order, actor=actor)
    if check is not None:
        hold = check.holds(mode=settings.PAYOUT_NAME_CHECK) and order.status == OrderStatus.ACCEPTED
        name_check_log(check=check, order=order, held=hold)
        if hold:
            order.hold(
                until=timezone.now() + timedelta(seconds=settings.MANUAL_APPROVAL_TIMEOUT),
                by=actor,
                description=check.description(expected=order.account_name),
            )
            order.save()
            return order
    tried, attempts = _tried_and_attempts(order)
    candidates = _healthy(_able(currency=order.currency, institution=order.institution, exclude=tried), None)
    adapter = _claim(candidates)
    if adapter is None:
        raise NoPspAvailable("No PSP can pay this order", order_id=order.order_id)
    attempt = attempts + 1
    transfer = Transfer.objects.create(
        order=order,
        psp=adapter.name,
        attempt=attempt,
        reference=adapter.make_reference(order_key=order.order_id, attempt=attempt),
        amount=order.amount,
        currency=order.currency,
        account_masked=mask_account(order.account_identifier),
        psp_institution=_psp_code(adapter.name, order.institution),
        # The sweep sends it if the process dies between this commit and the send task (never NULL).
        next_check_at=timezone.now() + SEND_GRACE,
    )
    description = "Payout approved" if order.status == OrderStatus.HELD else "Payout started"
    if actor is not None and order.approved_by_id is None:
        order.approved_by = actor  # type: ignore[assignment]
    order.start_payout(psp=adapter.name, by=actor, description=f"{description} via {adapter.name}")
    order.save()
    _kick_send(transfer.pk)
    logger.info(
        "payout.started",
        extra={"order_id": order.order_id, "psp": adapter.name, "reference": transfer.reference},
    )
    return order


# --- sending and learning the outcome ---------------------------------------------------------------------


def _lock_order_of(transfer_pk: int, order_pk: int | None = None) -> Order:
    """Lock the transfer's order (always before the transfer: lock order Order -> Transfer -> Balance)."""
    if order_pk is None:
        order_pk = Transfer.objects.values_list("order_id", flat=True).get(pk=transfer_pk)
    return order_locks.lock_order(order_pk)


def _lock_transfer(transfer_pk: int) -> Transfer:
    """The transfer's row, locked; lock its order first."""
    return Transfer.objects.select_for_update().get(pk=transfer_pk)


def _history(transfer: Transfer, event: str, **data: object) -> None:
    transfer.history = [*transfer.history, {"at": timezone.now().isoformat(), "event": event, **data}]


@transaction.atomic(durable=True)
def _mark_sending(transfer_pk: int) -> int | None:
    """Count the send before the PSP call, so a crash after it is known to be a maybe-sent; return the
    send's number. None when the transfer is no longer to be sent, or another send of it is in flight
    (its lease has not run out: the PSP may still be answering it)."""
    transfer = _lock_transfer(transfer_pk)
    if transfer.status != TransferStatus.CREATED or transfer.resend_refused:
        return None
    now = timezone.now()
    if transfer.last_sent_at is not None and now - transfer.last_sent_at < SEND_LEASE:
        logger.info("payout.send_in_flight", extra={"reference": transfer.reference})
        return None
    transfer.sends += 1
    transfer.last_sent_at = now
    _history(
        transfer,
        "send",
        send=transfer.sends,
        amount=str(transfer.amount),
        currency=transfer.currency,
        account=transfer.account_masked,
        psp_institution=transfer.psp_institution,
    )
    transfer.next_check_at = now + timedelta(seconds=30)
    transfer.save(update_fields=["sends", "last_sent_at", "history", "next_check_at", "updated_at"])
    return transfer.sends


def transfer_send(*, transfer_pk: int, transfer: Transfer | None = None) -> Transfer:
    """Send a created transfer, asking the PSP about its reference first if it may have been sent.

    Never raises for anything the PSP answers: an unknown outcome keeps the transfer for a later look-up,
    an answer the node cannot read sends the order to review. A transfer that may have reached the PSP is
    sent again (same reference) only when a read shows nothing, its last send's lease has run out, and no
    re-send was refused before. ``transfer``: the row, just read with its order (``select_related``),
    when the caller has it.
    """
    transfer = transfer or Transfer.objects.select_related("order").get(pk=transfer_pk)
    if transfer.status != TransferStatus.CREATED:
        logger.info("payout.send_skipped", extra={"reference": transfer.reference, "status": transfer.status})
        return transfer
    adapter = registry.adapter(transfer.psp)
    if transfer.sends > 0:
        try:
            found = _look_up(adapter, transfer)
        except PspError as exc:
            return _record_unreachable(transfer_pk=transfer.pk, error=exc)
        if found.status != PayoutStatus.NOT_FOUND or transfer.resend_refused:
            return transfer_apply_result(transfer_pk=transfer.pk, result=found)
    send = _mark_sending(transfer.pk)
    if send is None:
        return Transfer.objects.get(pk=transfer.pk)
    order = transfer.order
    request = PayoutRequest(
        reference=transfer.reference,
        amount=transfer.amount,
        currency=transfer.currency,
        recipient=Recipient(
            institution=order.institution,
            account_identifier=order.account_identifier,
            account_name=order.account_name,
            psp_institution=transfer.psp_institution,
        ),
        narration=(order.memo or f"Payout {order.order_id}")[:100],
    )
    try:
        result = health.observed_call(adapter, "initiate_payout", lambda: adapter.initiate_payout(request))
    except DuplicateReference:
        # The PSP has this reference: it is at the PSP, whatever a read says at this moment.
        try:
            result = _look_up(adapter, transfer)
        except PspError as exc:
            return _record_unreachable(transfer_pk=transfer.pk, error=exc)
        if result.status == PayoutStatus.NOT_FOUND:
            result = PayoutResult(reference=transfer.reference, status=PayoutStatus.PENDING)
    except PspUnavailable as exc:
        return _record_unreachable(transfer_pk=transfer.pk, error=exc)
    except PspRejected as exc:
        return transfer_apply_rejection(transfer_pk=transfer.pk, error=exc, send=send)
    return transfer_apply_result(transfer_pk=transfer.pk, result=result, order_pk=transfer.order_id)


def _look_up(adapter: PspAdapter, transfer: Transfer) -> PayoutResult:
    """What the transfer's own PSP knows of its reference (whatever that PSP's health: never another PSP)."""
    return health.observed_call(
        adapter,
        "get_payout",
        lambda: adapter.get_payout(reference=transfer.reference, currency=transfer.currency),
    )


def transfer_check(*, transfer_pk: int) -> Transfer:
    """Ask the PSP about a pending (or maybe-sent) transfer and apply what it says. Never raises for a PSP
    answer: a look-up that fails or is refused keeps the transfer open (review after PAYOUT_REVIEW_AFTER).
    A transfer pending at the PSP is read whatever its order's state (review included): only the PSP's
    answer ends it.
    """
    transfer = Transfer.objects.get(pk=transfer_pk)
    if transfer.status == TransferStatus.CREATED:
        return transfer_send(transfer_pk=transfer_pk)
    if transfer.status != TransferStatus.PENDING:
        return transfer
    try:
        result = _look_up(registry.adapter(transfer.psp), transfer)
    except PspError as exc:
        return _record_unreachable(transfer_pk=transfer.pk, error=exc)
    return transfer_apply_result(transfer_pk=transfer.pk, result=result)


def _next_check(transfer: Transfer, now: datetime) -> datetime:
    age = now - transfer.created_at
    delay = min(max(age / 4, timedelta(seconds=2)), CHECK_BACKOFF_CAP)
    return now + delay


def _review_if_overdue(order: Order, transfer: Transfer, now: datetime, why: str) -> None:
    """An open outcome (maybe sent, or acknowledged and then not shown) for longer than
    PAYOUT_REVIEW_AFTER: the transfer is UNKNOWN and its order goes to staff. Caller holds both locks."""
    if now - transfer.created_at <= PAYOUT_REVIEW_AFTER:
        return
    transfer.status = TransferStatus.UNKNOWN
    transfer.next_check_at = None
    _history(transfer, "review", why=why)
    if order.status == OrderStatus.PAYING:
        order.payout_unknown(description=f"{transfer.psp}: {why} since {transfer.created_at:%H:%M:%S}")
        order.save()
    logger.warning(
        "payout.outcome_unknown",
        extra={"order_id": order.order_id, "reference": transfer.reference, "why": why},
    )


def _review_if_pending_too_long(order: Order, transfer: Transfer, now: datetime) -> None:
    """Pending at the PSP past PAYOUT_PENDING_REVIEW_AFTER: staff are told (the order goes to review) and
    the transfer is still read, since only the PSP's answer can end it. Caller holds both locks."""
    if order.status != OrderStatus.PAYING:
        return
    if now - transfer.created_at <= timedelta(seconds=settings.PAYOUT_PENDING_REVIEW_AFTER):
        return
    order.payout_unknown(description=f"{transfer.psp} still pending since {transfer.created_at:%H:%M:%S}")
    order.save()
    logger.warning(
        "payout.pending_too_long",
        extra={"order_id": order.order_id, "reference": transfer.reference, "psp": transfer.psp},
    )


@transaction.atomic(durable=True)
def _record_unreachable(*, transfer_pk: int, error: PspError) -> Transfer:
    """The PSP could not tell us (unreachable, or it refused the look-up): look again later, then review."""
    _forget()
    now = timezone.now()
    order = _lock_order_of(transfer_pk)
    transfer = _lock_transfer(transfer_pk)
    if transfer.status not in (TransferStatus.CREATED, TransferStatus.PENDING):
        return transfer
    _history(transfer, "unreachable", error=error.message[:200], http_status=error.http_status)
    transfer.next_check_at = _next_check(transfer, now)
    if transfer.status == TransferStatus.CREATED:
        _review_if_overdue(order, transfer, now, f"{transfer.psp} unreachable")
    else:
        _review_if_pending_too_long(order, transfer, now)
    transfer.save(update_fields=["history", "next_check_at", "status", "updated_at"])
    logger.warning(
        "payout.psp_unreachable", extra={"reference": transfer.reference, "error": error.message[:200]}
    )
    return transfer


@transaction.atomic(durable=True)
def transfer_apply_rejection(*, transfer_pk: int, error: PspRejected, send: int) -> Transfer:
    """The PSP refused send number ``send`` of the transfer.

    Final (REJECTED: fail over to the next PSP, or cancel with the reason) only when it refused the
    transfer's first and only send: then no money can have moved. The refusal of a re-send, or of a send
    while another one went out, says nothing about the earlier send (the PSP may have taken it: "insufficient
    funds" because it did): the transfer stays open, is never sent again, and only the PSP's answer about the
    reference ends it (or staff, after PAYOUT_REVIEW_AFTER).
    """
    _forget()
    now = timezone.now()
    order = _lock_order_of(transfer_pk)
    transfer = _lock_transfer(transfer_pk)
    if transfer.status != TransferStatus.CREATED:
        logger.warning(
            "payout.refusal_ignored",
            extra={"reference": transfer.reference, "status": transfer.status, "send": send},
        )
        return transfer
    if send != 1 or transfer.sends != 1:
        transfer.resend_refused = True
        transfer.next_check_at = _next_check(transfer, now)
        _history(transfer, "resend_refused", send=send, reason=error.reason, message=error.message[:200])
        _review_if_overdue(order, transfer, now, "re-send refused and the PSP shows nothing")
        transfer.save()
        logger.warning(
            "payout.resend_refused",
            extra={"reference": transfer.reference, "send": send, "psp_message": error.message[:200]},
        )
        return transfer
    transfer.status = TransferStatus.REJECTED
    transfer.failure_reason = error.reason
    transfer.failure_message = error.message[:512]
    transfer.next_check_at = None
    _history(transfer, "rejected", reason=error.reason, message=error.message[:200])
    transfer.save()
    if order.status != OrderStatus.PAYING:
        return transfer
    next_psps = route(currency=order.currency, institution=order.institution, exclude=_tried_psps(order))
    if next_psps and error.reason != "recipient_invalid":
        order.payout_refused(description=f"{transfer.psp} refused: {error.message[:200]}; failing over")
        order.save()
        order_services._kick_payout(order.pk)
        return transfer
    reason = (
        "Invalid recipient bank details"
        if error.reason == "recipient_invalid"
        else f"Payout refused: {error.message}"
    )
    order_services.order_record_no_payout_possible(order=order, reason=reason[:255], now=now)
    return transfer


@transaction.atomic(durable=True)
def transfer_apply_result(*, transfer_pk: int, result: PayoutResult, order_pk: int | None = None) -> Transfer:
    """Apply what the PSP says about a transfer to it and its order (under both locks).

    SUCCEEDED and FAILED are final. PENDING never follows SUCCEEDED, and a read that shows nothing never
    ends a transfer: it stays open (polled) until the PSP answers or PAYOUT_REVIEW_AFTER sends it to staff.
    """
    now = timezone.now()
    order = _lock_order_of(transfer_pk, order_pk)
    transfer = _lock_transfer(transfer_pk)
    if transfer.status in (TransferStatus.SUCCEEDED, TransferStatus.FAILED, TransferStatus.REJECTED):
        logger.info(
            "payout.result_repeat", extra={"reference": transfer.reference, "status": transfer.status}
        )
        return transfer
    if result.psp_transaction_id:
        transfer.psp_transaction_id = result.psp_transaction_id[:128]
    fee = _storable_fee(result)
    if fee is not None:
        transfer.fee = fee
    _history(transfer, "result", status=result.status, psp_transaction_id=transfer.psp_transaction_id)
    if result.raw:
        transfer.last_response = redact_payload(result.raw)
    tx_id = transfer.psp_transaction_id or transfer.reference
    in_review = order.status == OrderStatus.NEEDS_REVIEW
    if result.status == PayoutStatus.PENDING:
        transfer.status = TransferStatus.PENDING
        transfer.next_check_at = _next_check(transfer, now)
        if order.status == OrderStatus.PAYING:
            order_services.order_record_payout_pending(order=order, tx_id=tx_id)
        _review_if_pending_too_long(order, transfer, now)
        transfer.save()
    elif result.status == PayoutStatus.SUCCEEDED:
        transfer.status = TransferStatus.SUCCEEDED
        transfer.next_check_at = None
        transfer.save()
        if order.status == OrderStatus.PAYING:  # reports fulfil pending (once), then success
            order_services.order_record_payout_succeeded(order=order, tx_id=tx_id, now=now)
    elif result.status == PayoutStatus.FAILED:
        transfer.status = TransferStatus.FAILED
        transfer.failure_reason = result.failure_reason or ""
        transfer.failure_message = result.failure_message[:512]
        transfer.next_check_at = None
        transfer.save()
        if order.status == OrderStatus.PAYING:
            reason = result.failure_message or "Payout failed"
            order_services.order_record_payout_failed(order=order, reason=reason[:255], tx_id=tx_id, now=now)
    elif result.status == PayoutStatus.NOT_FOUND:
        if transfer.status != TransferStatus.UNKNOWN:
            transfer.next_check_at = _next_check(transfer, now)
            why = "acknowledged, then not shown" if transfer.status == TransferStatus.PENDING else "not shown"
            _review_if_overdue(order, transfer, now, f"{transfer.psp}: {why}")
        transfer.save()
    else:  # UNKNOWN: an answer we cannot interpret; a human decides
        transfer.status = TransferStatus.UNKNOWN
        transfer.next_check_at = None
        transfer.save()
        if order.status == OrderStatus.PAYING:
            order.payout_unknown(description=f"{transfer.psp} answered an unknown status")
            order.save()
    if in_review:
        logger.warning(
            "payout.result_while_in_review",
            extra={"order_id": order.order_id, "reference": transfer.reference, "status": result.status},
        )
    return transfer


_MONEY_LIMIT = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)


def _storable_fee(result: PayoutResult) -> Decimal | None:
    """The PSP's fee when it fits a money column; an absurd one is logged and not stored (never a crash)."""
    fee = result.fee
    if fee is None:
        return None
    if fee.is_finite() and 0 <= fee < _MONEY_LIMIT:
        return fee.quantize(Decimal(1).scaleb(-MONEY_DECIMAL_PLACES), rounding=ROUND_HALF_EVEN)
    logger.warning("payout.fee_unusable", extra={"reference": result.reference, "fee": str(fee)[:40]})
    return None


def transfers_due_for_check(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    now = now or timezone.now()
    return list(
        Transfer.objects.filter(
            status__in=(TransferStatus.CREATED, TransferStatus.PENDING), next_check_at__lte=now
        )
        .order_by("next_check_at")
        .values_list("pk", flat=True)[:limit]
    )


class NoResolver(PspRejected):
    pass


def account_resolve(*, account_identifier: str, institution: str, currency: str) -> str:
    """The account holder's name from the first healthy PSP that serves the institution.

    Raises PspRejected (NoResolver when no PSP serves it), PspUnavailable.
    """
    adapters = route(currency=currency, institution=institution)
    if not adapters:
        raise NoResolver("No PSP serves this institution", psp="", reason=FailureReason.UNSUPPORTED)
    adapter = adapters[0]
    recipient = Recipient(
        institution=institution,
        account_identifier=account_identifier,
        psp_institution=_psp_code(adapter.name, institution),
    )
    name = health.observed_call(
        adapter, "resolve_account", lambda: adapter.resolve_account(recipient=recipient, currency=currency)
    )
    if not name.account_name or name.account_name.strip().upper() == "OK":
        raise PspRejected(
            "The PSP returned no account name", psp=adapter.name, reason=FailureReason.RECIPIENT_INVALID
        )
    return name.account_name


def psp_balances_read(*, psp: str) -> list[PspBalanceReading]:
    """The PSP's balances, read through the instrumented path. Raises PspError."""
    adapter = registry.adapter(psp)
    return health.observed_call(adapter, "get_balances", adapter.get_balances)
