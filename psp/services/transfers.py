"""Transfers: one row per payout attempt, the PSP calls about it, and what their answers make of it.

The rule (README "Guarantees"): once a send may have reached the PSP, only that PSP's own answer about the
transfer's reference (a read by reference, or a webhook confirmed by such a read) can make it final.

* ``transfer_create`` writes the row (unique per order while live) for an order its caller has locked.
* ``transfer_call`` talks to the PSP, with no lock held: a transfer never sent is sent; one that may have
  been sent is read by reference first and sent again (same reference) only when the read shows nothing,
  the previous send's lease has run out and no re-send was refused; a pending one is read. The send is
  counted (``sends``, ``last_sent_at``) in its own transaction *before* the call, so a crash after it is
  known to be a maybe-sent. It returns a ``PspAnswer``.
* ``transfer_record`` records an answer on the transfer, under the locks its caller holds (the order's,
  then this transfer's), and returns the ``TransferChange`` the order must follow. It never touches the
  order: ``orders`` applies the change (this layer never imports the order services).
* The payout lane claims due transfers (``transfers_claim_due``); a webhook only makes one due at once
  (``transfer_mark_due``): the lane then reads it by reference.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from balances.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from orders.models import Order
from provision.logging import mask_account, redact_payload
from psp import health, registry
from psp.base import (
    DuplicateReference,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
    PspAdapter,
    PspError,
    PspRejected,
    PspUnavailable,
    Recipient,
)
from psp.models import Transfer, TransferStatus

logger = logging.getLogger(__name__)

# An open outcome (maybe sent and not shown, or acknowledged and then not shown) this long goes to staff.
PAYOUT_REVIEW_AFTER = timedelta(minutes=15)
CHECK_BACKOFF_CAP = timedelta(seconds=60)
# A PSP's Retry-After (a 429, a 503) is honoured up to this long; a longer one is not waited for in full.
RETRY_AFTER_CAP = timedelta(minutes=5)
# No second send of a transfer starts while an earlier one may still be waiting for the PSP's answer:
# longer than any PSP client's connect + read timeout.
SEND_LEASE = timedelta(seconds=60)
# A transfer the payout lane is working on is not claimed again before this (the lane's own lease).
CLAIM_LEASE = timedelta(seconds=90)
OPEN_STATES = (TransferStatus.CREATED, TransferStatus.PENDING)
# Read by the payout lane when due: open transfers, and succeeded ones a webhook says may be reversed.
READ_STATES = (*OPEN_STATES, TransferStatus.SUCCEEDED)
_MONEY_LIMIT = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES)


class AnswerKind(enum.StrEnum):
    RESULT = "result"  # the PSP said something about the reference (PayoutResult)
    REFUSED = "refused"  # the PSP refused send number ``send`` (a 4xx that is not "duplicate")
    UNREACHABLE = "unreachable"  # no answer, or the PSP refused to answer the read
    NOTHING = "nothing"  # no call was made (not due, another send in flight, already final)


@dataclass(frozen=True)
class PspAnswer:
    """What one call to the PSP about a transfer came back with."""

    kind: AnswerKind
    result: PayoutResult | None = None
    error: PspError | None = None
    send: int = 0

    @classmethod
    def of(cls, result: PayoutResult) -> PspAnswer:
        return cls(AnswerKind.RESULT, result=result)


class Change(enum.StrEnum):
    """What the transfer's order must do after an answer was recorded."""

    NONE = "none"
    PENDING = "pending"  # the PSP has it: report fulfil pending (once)
    SUCCEEDED = "succeeded"  # paid: debit, report success
    FAILED = "failed"  # the PSP says it failed (no money moved): release, report failed
    REJECTED = "rejected"  # refused before money could move: another PSP may try
    REVIEW = "review"  # outcome unknown for too long, or unreadable: staff decide
    REVERSED = "reversed"  # paid, then taken back by the PSP: credit it back; staff resolve it


@dataclass(frozen=True)
class TransferChange:
    change: Change
    tx_id: str = ""
    reason: str = ""
    recipient_invalid: bool = False


NO_CHANGE = TransferChange(Change.NONE)


# --- creating and claiming -------------------------------------------------------------------------------


def transfer_lock(transfer_pk: int) -> Transfer:
    """The transfer, locked. The caller holds its order's lock first (lock order Order -> Transfer ->
    Balance)."""
    return Transfer.objects.select_for_update(of=("self",)).get(pk=transfer_pk)


def transfer_history(transfer: Transfer, event: str, **data: object) -> None:
    transfer.history = [*transfer.history, {"at": timezone.now().isoformat(), "event": event, **data}]


def transfer_create(*, order: Order, adapter: PspAdapter, attempt: int, psp_institution: str) -> Transfer:
    """Write attempt ``attempt`` of the order's payout at ``adapter``, due for sending at once. The caller
    holds the order's lock (one live transfer per order is also a database constraint)."""
    return Transfer.objects.create(
        order=order,
        psp=adapter.name,
        attempt=attempt,
        reference=adapter.make_reference(order_key=order.order_id, attempt=attempt),
        amount=order.amount,
        currency=order.currency,
        account_masked=mask_account(order.account_identifier),
        psp_institution=psp_institution,
        next_check_at=timezone.now(),
    )


def transfers_of(*, order: Order) -> tuple[list[str], int]:
    """The PSPs that refused this order's payout before money moved, and how many transfers it has had."""
    rows = list(order.transfers.values_list("psp", "status"))
    return [psp for psp, status in rows if status == TransferStatus.REJECTED], len(rows)


def transfer_open_of(*, order_pk: int) -> Transfer | None:
    """The order's latest transfer (the live one, if any)."""
    return Transfer.objects.filter(order_id=order_pk).order_by("-attempt").first()


@transaction.atomic
def transfers_claim_due(*, limit: int, now: datetime | None = None) -> list[int]:
    """Claim up to ``limit`` transfers due for a send or a read (skipping rows another lane holds) for
    ``CLAIM_LEASE``; the answer's record sets when each is due next."""
    now = now or timezone.now()
    pks = list(
        Transfer.objects.select_for_update(skip_locked=True)
        .filter(status__in=READ_STATES, next_check_at__lte=now)
        .order_by("next_check_at")
        .values_list("pk", flat=True)[:limit]
    )
    if pks:
        Transfer.objects.filter(pk__in=pks).update(next_check_at=now + CLAIM_LEASE)
    return pks


def transfers_due(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    now = now or timezone.now()
    return list(
        Transfer.objects.filter(status__in=OPEN_STATES, next_check_at__lte=now)
        .order_by("next_check_at")
        .values_list("pk", flat=True)[:limit]
    )


def transfer_mark_due(*, psp: str, reference: str) -> int:
    """A webhook about ``reference``: make its transfer due for a read now (the webhook is a hint; the
    payout lane reads the PSP). Open transfers, and succeeded ones (a webhook may announce a reversal).
    How many transfers that was (0 or 1). Many webhooks, one read."""
    return Transfer.objects.filter(
        Q(status__in=(TransferStatus.PENDING, TransferStatus.SUCCEEDED))
        | Q(status=TransferStatus.CREATED, sends__gt=0),
        psp=psp,
        reference=reference,
    ).update(next_check_at=timezone.now())


# --- calling the PSP (no lock held) ----------------------------------------------------------------------


def _look_up(adapter: PspAdapter, transfer: Transfer) -> PayoutResult:
    """What the transfer's own PSP knows of its reference (whatever that PSP's health: never another PSP)."""
    return health.observed_call(
        adapter,
        "get_payout",
        lambda: adapter.get_payout(reference=transfer.reference, currency=transfer.currency),
    )


@transaction.atomic(durable=True)
def _mark_sending(transfer_pk: int) -> int | None:
    """Count the send before the PSP call and return its number; None when the transfer is no longer to be
    sent, or another send of it may still be in flight (its lease has not run out)."""
    transfer = transfer_lock(transfer_pk)
    if transfer.status != TransferStatus.CREATED or transfer.resend_refused:
        return None
    now = timezone.now()
    if transfer.last_sent_at is not None and now - transfer.last_sent_at < SEND_LEASE:
        logger.info("payout.send_in_flight", extra={"reference": transfer.reference})
        return None
    transfer.sends += 1
    transfer.last_sent_at = now
    transfer_history(
        transfer,
        "send",
        send=transfer.sends,
        amount=str(transfer.amount),
        currency=transfer.currency,
        account=transfer.account_masked,
        psp_institution=transfer.psp_institution,
    )
    transfer.save(update_fields=["sends", "last_sent_at", "history", "updated_at"])
    return transfer.sends


def _payout_request(transfer: Transfer) -> PayoutRequest:
    order = transfer.order
    return PayoutRequest(
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


def transfer_call(*, transfer_pk: int) -> PspAnswer:
    """Send the transfer, or read it, as its state calls for; return what the PSP answered.

    Never raises for anything the PSP does: no answer is ``UNREACHABLE``, a refusal of a send is
    ``REFUSED`` (with the send's number), a duplicate-reference answer is the PSP's read of the reference
    (pending when the read does not show it yet: the PSP has said it has it).
    """
    transfer = Transfer.objects.select_related("order").get(pk=transfer_pk)
    if transfer.status not in READ_STATES:
        return PspAnswer(AnswerKind.NOTHING)
    adapter = registry.adapter(transfer.psp)
    if transfer.status == TransferStatus.SUCCEEDED:  # never sent again: only read
        try:
            return PspAnswer.of(_look_up(adapter, transfer))
        except PspError as exc:
            return PspAnswer(AnswerKind.UNREACHABLE, error=exc)
    if transfer.status == TransferStatus.PENDING or transfer.sends > 0:
        try:
            found = _look_up(adapter, transfer)
        except PspError as exc:
            return PspAnswer(AnswerKind.UNREACHABLE, error=exc)
        if (
            found.status != PayoutStatus.NOT_FOUND
            or transfer.status == TransferStatus.PENDING
            or transfer.resend_refused
        ):
            return PspAnswer.of(found)
    send = _mark_sending(transfer.pk)
    if send is None:
        return PspAnswer(AnswerKind.NOTHING)
    request = _payout_request(transfer)
    try:
        return PspAnswer.of(
            health.observed_call(adapter, "initiate_payout", lambda: adapter.initiate_payout(request))
        )
    except DuplicateReference:
        try:
            found = _look_up(adapter, transfer)
        except PspError as exc:
            return PspAnswer(AnswerKind.UNREACHABLE, error=exc)
        if found.status == PayoutStatus.NOT_FOUND:
            found = PayoutResult(reference=transfer.reference, status=PayoutStatus.PENDING)
        return PspAnswer.of(found)
    except PspUnavailable as exc:
        return PspAnswer(AnswerKind.UNREACHABLE, error=exc)
    except PspRejected as exc:
        return PspAnswer(AnswerKind.REFUSED, error=exc, send=send)


# --- recording an answer (the caller holds the order's lock, then this transfer's) ----------------------


def _next_check(transfer: Transfer, now: datetime) -> datetime:
    age = now - transfer.created_at
    return now + min(max(age / 4, timedelta(seconds=2)), CHECK_BACKOFF_CAP)


def _next_check_after(transfer: Transfer, now: datetime, error: PspError) -> datetime:
    """The next check after a call the PSP did not answer: the usual back-off, but never sooner than the
    PSP's Retry-After asked (capped at RETRY_AFTER_CAP)."""
    due = _next_check(transfer, now)
    retry_after = error.retry_after if isinstance(error, PspUnavailable) else None
    if retry_after is not None and retry_after > 0:
        due = max(due, now + min(timedelta(seconds=retry_after), RETRY_AFTER_CAP))
    return due


def _overdue(transfer: Transfer, now: datetime, why: str) -> TransferChange:
    """An open outcome past PAYOUT_REVIEW_AFTER: the transfer is UNKNOWN and its order goes to staff."""
    if now - transfer.created_at <= PAYOUT_REVIEW_AFTER:
        return NO_CHANGE
    transfer.status = TransferStatus.UNKNOWN
    transfer.next_check_at = None
    transfer_history(transfer, "review", why=why)
    logger.warning("payout.outcome_unknown", extra={"reference": transfer.reference, "why": why})
    return TransferChange(Change.REVIEW, reason=f"{why} since {transfer.created_at:%H:%M:%S}")


def _pending_too_long(transfer: Transfer, now: datetime, tx_id: str) -> TransferChange:
    """Pending at the PSP past PAYOUT_PENDING_REVIEW_AFTER: staff are told; the transfer is still read."""
    if now - transfer.created_at <= timedelta(seconds=settings.PAYOUT_PENDING_REVIEW_AFTER):
        return TransferChange(Change.PENDING, tx_id=tx_id)
    logger.warning("payout.pending_too_long", extra={"reference": transfer.reference, "psp": transfer.psp})
    return TransferChange(
        Change.REVIEW,
        tx_id=tx_id,
        reason=f"{transfer.psp} still pending since {transfer.created_at:%H:%M:%S}",
    )


def _storable_fee(result: PayoutResult) -> Decimal | None:
    """The PSP's fee when it fits a money column; an absurd one is logged and not stored (never a crash)."""
    fee = result.fee
    if fee is None:
        return None
    if fee.is_finite() and 0 <= fee < _MONEY_LIMIT:
        return fee.quantize(Decimal(1).scaleb(-MONEY_DECIMAL_PLACES), rounding=ROUND_HALF_EVEN)
    logger.warning("payout.fee_unusable", extra={"reference": result.reference, "fee": str(fee)[:40]})
    return None


def transfer_record(*, transfer: Transfer, answer: PspAnswer) -> TransferChange:
    """Record ``answer`` on the locked ``transfer`` and save it; return what its order must do.

    SUCCEEDED and FAILED are final; PENDING never follows SUCCEEDED, and nothing moves a pending transfer
    back. A refusal is final (REJECTED) only for the transfer's first and only send. A read that shows
    nothing, no answer, or a refused re-send leave it open until the PSP answers or PAYOUT_REVIEW_AFTER.
    """
    now = timezone.now()
    if transfer.status == TransferStatus.SUCCEEDED:
        return _record_after_success(transfer, answer)
    if transfer.status in (TransferStatus.FAILED, TransferStatus.REJECTED, TransferStatus.REVERSED):
        logger.info(
            "payout.answer_repeat", extra={"reference": transfer.reference, "status": transfer.status}
        )
        return NO_CHANGE
    if answer.kind == AnswerKind.NOTHING:
        if transfer.status in OPEN_STATES and transfer.next_check_at is not None:
            transfer.next_check_at = min(transfer.next_check_at, _next_check(transfer, now))
            transfer.save(update_fields=["next_check_at", "updated_at"])
        return NO_CHANGE
    if answer.kind == AnswerKind.UNREACHABLE and answer.error is not None:
        change = _record_unreachable(transfer, answer.error, now)
    elif answer.kind == AnswerKind.REFUSED and isinstance(answer.error, PspRejected):
        change = _record_refusal(transfer, answer.error, answer.send, now)
    elif answer.result is not None:
        change = _record_result(transfer, answer.result, now)
    else:
        raise ValueError(f"an answer of kind {answer.kind} without its error or result")
    transfer.save()
    return change


def _record_after_success(transfer: Transfer, answer: PspAnswer) -> TransferChange:
    """A read of a transfer that succeeded (a webhook made it due): only a reversal changes anything."""
    result = answer.result
    if answer.kind == AnswerKind.RESULT and result is not None and result.status == PayoutStatus.REVERSED:
        transfer.status = TransferStatus.REVERSED
        transfer.next_check_at = None
        transfer_history(transfer, "reversed", psp_transaction_id=result.psp_transaction_id)
        if result.raw:
            transfer.last_response = redact_payload(result.raw)
        transfer.save()
        logger.error("payout.reversed", extra={"reference": transfer.reference, "psp": transfer.psp})
        return TransferChange(Change.REVERSED, reason=result.failure_message or f"{transfer.psp} reversed it")
    if (
        answer.kind == AnswerKind.UNREACHABLE
        and answer.error is not None
        and transfer.next_check_at is not None
    ):
        # read it again: a reversal was hinted
        transfer.next_check_at = _next_check_after(transfer, timezone.now(), answer.error)
    else:
        transfer.next_check_at = None
    transfer.save(update_fields=["next_check_at", "updated_at"])
    return NO_CHANGE


def _record_unreachable(transfer: Transfer, error: PspError, now: datetime) -> TransferChange:
    if transfer.status == TransferStatus.UNKNOWN:
        return NO_CHANGE
    retry_after = error.retry_after if isinstance(error, PspUnavailable) else None
    transfer_history(
        transfer,
        "unreachable",
        error=error.message[:200],
        http_status=error.http_status,
        **({"retry_after": retry_after} if retry_after is not None else {}),
    )
    transfer.next_check_at = _next_check_after(transfer, now, error)
    logger.warning(
        "payout.psp_unreachable", extra={"reference": transfer.reference, "error": error.message[:200]}
    )
    if transfer.status == TransferStatus.CREATED:
        return _overdue(transfer, now, f"{transfer.psp} unreachable")
    return _pending_too_long(transfer, now, transfer.psp_transaction_id or transfer.reference)


def _record_refusal(transfer: Transfer, error: PspRejected, send: int, now: datetime) -> TransferChange:
    if transfer.status != TransferStatus.CREATED:
        logger.warning(
            "payout.refusal_ignored",
            extra={"reference": transfer.reference, "status": transfer.status, "send": send},
        )
        return NO_CHANGE
    if send != 1 or transfer.sends != 1:
        # The refusal of a re-send, or of a send while another went out, says nothing about the earlier
        # send: the PSP may have it ("insufficient funds" because it took the money). Never final.
        transfer.resend_refused = True
        transfer.next_check_at = _next_check(transfer, now)
        transfer_history(
            transfer, "resend_refused", send=send, reason=error.reason, message=error.message[:200]
        )
        logger.warning(
            "payout.resend_refused",
            extra={"reference": transfer.reference, "send": send, "psp_message": error.message[:200]},
        )
        return _overdue(transfer, now, f"{transfer.psp}: re-send refused and not shown")
    transfer.status = TransferStatus.REJECTED
    transfer.failure_reason = error.reason
    transfer.failure_message = error.message[:512]
    transfer.next_check_at = None
    transfer_history(transfer, "rejected", reason=error.reason, message=error.message[:200])
    return TransferChange(
        Change.REJECTED, reason=error.message[:200], recipient_invalid=error.reason == "recipient_invalid"
    )


def _record_result(transfer: Transfer, result: PayoutResult, now: datetime) -> TransferChange:
    if result.psp_transaction_id:
        transfer.psp_transaction_id = result.psp_transaction_id[:128]
    fee = _storable_fee(result)
    if fee is not None:
        transfer.fee = fee
    transfer_history(transfer, "result", status=result.status, psp_transaction_id=transfer.psp_transaction_id)
    if result.raw:
        transfer.last_response = redact_payload(result.raw)
    tx_id = transfer.psp_transaction_id or transfer.reference
    if result.status == PayoutStatus.PENDING:
        transfer.status = TransferStatus.PENDING
        transfer.next_check_at = _next_check(transfer, now)
        return _pending_too_long(transfer, now, tx_id)
    if result.status == PayoutStatus.SUCCEEDED:
        transfer.status = TransferStatus.SUCCEEDED
        transfer.next_check_at = None
        return TransferChange(Change.SUCCEEDED, tx_id=tx_id)
    if result.status == PayoutStatus.REVERSED:  # never reported a success: the money came back, a failure
        result = replace(
            result, status=PayoutStatus.FAILED, failure_message=result.failure_message or "Reversed"
        )
    if result.status == PayoutStatus.FAILED:
        transfer.status = TransferStatus.FAILED
        transfer.failure_reason = result.failure_reason or ""
        transfer.failure_message = result.failure_message[:512]
        transfer.next_check_at = None
        return TransferChange(Change.FAILED, tx_id=tx_id, reason=result.failure_message or "Payout failed")
    if result.status == PayoutStatus.NOT_FOUND:
        if transfer.status == TransferStatus.UNKNOWN:
            return NO_CHANGE
        transfer.next_check_at = _next_check(transfer, now)
        why = "acknowledged, then not shown" if transfer.status == TransferStatus.PENDING else "not shown"
        return _overdue(transfer, now, f"{transfer.psp}: {why}")
    # UNKNOWN: an answer the node cannot interpret; a human decides
    transfer.status = TransferStatus.UNKNOWN
    transfer.next_check_at = None
    return TransferChange(Change.REVIEW, tx_id=tx_id, reason=f"{transfer.psp} answered an unknown status")


def transfer_order_pk(*, transfer_pk: int) -> int:
    """The primary key of the transfer's order (to lock the order before the transfer)."""
    return Transfer.objects.values_list("order_id", flat=True).get(pk=transfer_pk)
