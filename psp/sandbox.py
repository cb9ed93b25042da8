"""The sandbox PSP: a real adapter that lives in the project, for `make run`, demos and tests.

It keeps its state in the node's database (``SandboxPayout``) so web and worker processes agree, and it
behaves the way real sandboxes do, decided by the recipient's account number:

    ends in 0000   refused at once: recipient account invalid (PspRejected, no money moved)
    ends in 1111   accepted, then fails: "Insufficient funds in your account"
    ends in 2222   accepted, then fails: "Beneficiary Bank not Available"
    ends in 9999   accepted and stays pending for ever (exercises needs_review / polling)
    anything else  succeeds, after SANDBOX_LATENCY_SECONDS (0 = at once)

``SANDBOX_FAILURE_RATE`` (0..1) additionally fails that share of payouts, chosen deterministically from
the reference so the same order always behaves the same. Starting balances come from
``SANDBOX_BALANCES``; the balance falls by every successful payout.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from psp.base import (
    AccountName,
    DuplicateReference,
    FailureReason,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
    PspAdapter,
    PspBalanceReading,
    PspRejected,
    Recipient,
)
from psp.models import SandboxPayout

logger = logging.getLogger(__name__)

_OUTCOMES = {
    "1111": ("failed", "Insufficient funds in your account"),
    "2222": ("failed", "Beneficiary Bank not Available"),
    "9999": ("stuck", ""),
}


def _failure_reason(message: str) -> FailureReason:
    lowered = message.lower()
    if "insufficient" in lowered:
        return FailureReason.INSUFFICIENT_FUNDS
    if "not available" in lowered:
        return FailureReason.DESTINATION_UNAVAILABLE
    return FailureReason.OTHER


class SandboxAdapter(PspAdapter):
    name = "sandbox"

    def supports(self, *, currency: str, institution: str) -> bool:
        return currency in settings.SANDBOX_BALANCES or "*" in settings.SANDBOX_BALANCES

    def make_reference(self, *, order_key: str, attempt: int) -> str:
        return f"pn-{order_key.replace('-', '')[:32]}-{attempt}"

    def _decide(self, request: PayoutRequest) -> tuple[str, str]:
        outcome = _OUTCOMES.get(request.recipient.account_identifier[-4:])
        if outcome:
            return outcome
        rate = settings.SANDBOX_FAILURE_RATE
        if rate > 0:
            draw = int(hashlib.sha256(request.reference.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if Decimal(str(draw)) < rate:
                return ("failed", "Transfer Not Successful")
        return ("successful", "")

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        if request.recipient.account_identifier.endswith("0000"):
            raise PspRejected(
                "Invalid recipient account",
                psp=self.name,
                reason=FailureReason.RECIPIENT_INVALID,
                http_status=400,
            )
        status, message = self._decide(request)
        latency = settings.SANDBOX_LATENCY_SECONDS
        try:
            with transaction.atomic():
                payout = SandboxPayout.objects.create(
                    reference=request.reference,
                    transaction_id="SBX"
                    + hashlib.sha256(request.reference.encode()).hexdigest()[:16].upper(),
                    amount=request.amount,
                    currency=request.currency,
                    account_identifier=request.recipient.account_identifier,
                    status=status,
                    failure_message=message,
                    complete_at=timezone.now() + timedelta(seconds=latency),
                )
        except IntegrityError:
            raise DuplicateReference(
                "Duplicate reference", psp=self.name, http_status=400, psp_code="04"
            ) from None
        return self._result(payout)

    def _result(self, payout: SandboxPayout) -> PayoutResult:
        if payout.status == "stuck" or timezone.now() < payout.complete_at:
            status = PayoutStatus.PENDING
        elif payout.status == "successful":
            status = PayoutStatus.SUCCEEDED
        else:
            status = PayoutStatus.FAILED
        return PayoutResult(
            reference=payout.reference,
            status=status,
            psp_transaction_id=payout.transaction_id,
            failure_reason=_failure_reason(payout.failure_message) if status == PayoutStatus.FAILED else None,
            failure_message=payout.failure_message if status == PayoutStatus.FAILED else "",
            fee=Decimal("0"),
            amount=payout.amount,
            completed_at=payout.complete_at if status != PayoutStatus.PENDING else None,
        )

    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        payout = SandboxPayout.objects.filter(reference=reference).first()
        if payout is None:
            return PayoutResult(reference=reference, status=PayoutStatus.NOT_FOUND)
        return self._result(payout)

    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        account = recipient.account_identifier
        if not account.isdigit() or account.endswith("0000"):
            raise PspRejected("Account not found", psp=self.name, reason=FailureReason.RECIPIENT_INVALID)
        return AccountName(account_identifier=account, account_name=f"SANDBOX ACCOUNT {account[-4:]}")

    def get_balances(self) -> list[PspBalanceReading]:
        readings = []
        for currency, start in settings.SANDBOX_BALANCES.items():
            if currency == "*":
                continue
            paid = SandboxPayout.objects.filter(
                currency=currency, status="successful", complete_at__lte=timezone.now()
            ).aggregate(total=Sum("amount"))["total"] or Decimal("0")
            total = start - paid
            readings.append(PspBalanceReading(currency=currency, total=total, available=total))
        return readings

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> object:  # type: ignore[override]
        raise PspRejected("the sandbox sends no webhooks", psp=self.name, reason=FailureReason.UNSUPPORTED)
