"""What Safaricom said about a payout, as the node's PayoutResult: from the Transaction Status answers and the
sends recorded for its reference (``DarajaRequest`` rows, newest first)."""

from __future__ import annotations

import logging

from psp.base import FailureReason, PayoutResult, PayoutStatus, PspUnavailable
from psp.clients.mpesa.wire import NAME
from psp.models import DarajaAnswer, DarajaRequest, DarajaSend

logger = logging.getLogger(__name__)


def final_result(reference: str, finals: list[DarajaRequest], payments: list[DarajaRequest]) -> PayoutResult:
    """A final status answer (newest first). Two different final answers, or a Completed amount that is
    not the amount sent, go to a human (UNKNOWN)."""
    answer = finals[0]
    if len({row.answer for row in finals}) > 1:
        logger.error("mpesa.payout.conflicting_answers", extra={"psp": NAME, "reference": reference})
        return PayoutResult(
            reference=reference,
            status=PayoutStatus.UNKNOWN,
            failure_message="M-Pesa gave conflicting final answers for this payment",
            raw=_row_raw(answer),
        )
    if answer.answer == DarajaAnswer.FAILED:
        return PayoutResult(
            reference=reference,
            status=PayoutStatus.FAILED,
            failure_reason=FailureReason.TIMEOUT
            if answer.transaction_status.lower() == "expired"
            else FailureReason.OTHER,
            failure_message=f"M-Pesa: the payment is {answer.transaction_status}",
            raw=_row_raw(answer),
        )
    sent = next((row.amount for row in payments if row.amount is not None), None)
    if sent is None or answer.result_amount is None or answer.result_amount != sent:
        logger.error(
            "mpesa.payout.amount_unreconciled",
            extra={"psp": NAME, "reference": reference, "sent": str(sent), "paid": str(answer.result_amount)},
        )
        return PayoutResult(
            reference=reference,
            status=PayoutStatus.UNKNOWN,
            psp_transaction_id=answer.receipt,
            failure_message=f"M-Pesa says Completed for {answer.result_amount}, the node sent {sent}",
            raw=_row_raw(answer),
        )
    return PayoutResult(
        reference=reference,
        status=PayoutStatus.SUCCEEDED,
        psp_transaction_id=answer.receipt,
        amount=answer.result_amount,
        fee=answer.fee,
        completed_at=answer.completed_at,
        raw=_row_raw(answer),
    )


def interim_result(
    reference: str, queries: list[DarajaRequest], payments: list[DarajaRequest]
) -> PayoutResult:
    """No final answer yet: the newest status answer given after the last send, else what the sends
    themselves showed. Raises PspUnavailable when Safaricom has said nothing about the reference."""
    last_send_at = payments[0].sent_at if payments else None
    current = next(
        (row for row in queries if row.answer in (DarajaAnswer.PENDING, DarajaAnswer.NOT_FOUND)), None
    )
    if current is not None and (last_send_at is None or current.sent_at > last_send_at):
        status = PayoutStatus.NOT_FOUND if current.answer == DarajaAnswer.NOT_FOUND else PayoutStatus.PENDING
        return PayoutResult(reference=reference, status=status, raw=_row_raw(current))
    if any(row.send in (DarajaSend.ACCEPTED, DarajaSend.DUPLICATE) for row in payments) or any(
        row.answer == DarajaAnswer.PENDING for row in queries
    ):
        return PayoutResult(reference=reference, status=PayoutStatus.PENDING)
    raise PspUnavailable(
        "mpesa transaction_status: no answer about this reference yet (the result comes by callback)",
        psp=NAME,
        reason=FailureReason.TIMEOUT,
    )


def _row_raw(row: DarajaRequest) -> dict[str, object]:
    return {
        "ResultCode": row.result_code,
        "ResultDesc": row.result_desc,
        "TransactionStatus": row.transaction_status,
        "ReceiptNo": row.receipt,
        "Amount": str(row.result_amount) if row.result_amount is not None else None,
    }
