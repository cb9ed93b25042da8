"""The sandbox PSP: a real adapter that lives in the project, for `make run`, demos and tests.

It keeps its state in the node's database (``SandboxPayout``) so web and worker processes agree, and it
behaves the way real sandboxes do, decided by the recipient's account number:

    ends in 0000   refused at once: recipient account invalid (PspRejected, no money moved)
    ends in 3333   refused at once: insufficient funds (PspRejected: the node fails over to the next PSP)
    ends in 4444   refused at once: transfer limit exceeded (PspRejected: the node fails over as well)
    ends in 1111   accepted, then fails: "Insufficient funds in your account"
    ends in 2222   accepted, then fails: "Beneficiary Bank not Available"
    ends in 9999   accepted and stays pending for ever (exercises needs_review / polling)
    anything else  succeeds, after SANDBOX_LATENCY_SECONDS (0 = at once)

``SANDBOX_FAILURE_RATE`` (0..1) additionally fails that share of payouts, chosen deterministically from
the reference so the same order always behaves the same. Starting balances come from
``SANDBOX_BALANCES``; the balance falls by every successful payout.

Account resolution answers the name the caller expects (``Recipient.account_name``), or
``SANDBOX ACCOUNT <last 4>`` when none is given, except for accounts ending in 8888, which belong to
``SANDBOX OTHER HOLDER`` (a name mismatch); accounts ending in 0000 do not exist.

Webhooks, delivered to the node itself and signed like the real PSP: when ``SANDBOX_WEBHOOK_URL`` is set,
a payout that reaches a final state is announced by a POST of ``{"event": "transfer.successful" |
"transfer.failed", "data": {id, reference, status, amount, currency, reasonForFailure, completedAt}}``
(a payout set to ``reversed`` by hand is announced as ``transfer.reversed`` when its webhook is sent)
with ``X-Sandbox-Signature`` = hex HMAC-SHA512 of the raw body keyed with the hex SHA-256 of
``SANDBOX_WEBHOOK_SECRET`` (Lenco's scheme, protocol/lenco.md section 11). The POST is made by a django-q2
task enqueued when the payout's row is committed (at once, or scheduled for ``complete_at``), never inside
the caller's transaction or under a lock; it has a bounded timeout and is tried ``WEBHOOK_ATTEMPTS`` times.
A missed webhook costs nothing: the node polls.

References are Lenco's (``psp.references``: ``pn-`` + the order UUID's 32 hex digits + ``-<attempt>``, or a
tagged hash of any other order id; at most 40 characters), so the sandbox refuses nothing Lenco would take.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from psp import references
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
    WebhookNotice,
    WebhookSignatureInvalid,
)
from psp.clients import http
from psp.clients.lenco import webhook_signature as lenco_scheme_signature
from psp.models import SandboxPayout

logger = logging.getLogger(__name__)

_REFUSED_AT_ONCE = {
    "0000": (FailureReason.RECIPIENT_INVALID, "Invalid recipient account"),
    "3333": (FailureReason.INSUFFICIENT_FUNDS, "Insufficient funds in your account"),
    "4444": (FailureReason.LIMIT_EXCEEDED, "Transfer limit exceeded"),
}
_OUTCOMES = {
    "1111": ("failed", "Insufficient funds in your account"),
    "2222": ("failed", "Beneficiary Bank not Available"),
    "9999": ("stuck", ""),
}
OTHER_HOLDER = "SANDBOX OTHER HOLDER"
REFERENCE_PREFIX = "pn-"
REFERENCE_MAX_LENGTH = 40  # Lenco's
SIGNATURE_HEADER = "X-Sandbox-Signature"
WEBHOOK_EVENTS = {
    "successful": "transfer.successful",
    "failed": "transfer.failed",
    "reversed": "transfer.reversed",
}
_WEBHOOK_STATUS = {
    "successful": PayoutStatus.SUCCEEDED,
    "failed": PayoutStatus.FAILED,
    "reversed": PayoutStatus.REVERSED,
}
WEBHOOK_ATTEMPTS = 3
WEBHOOK_RETRY_DELAY = timedelta(seconds=30)
WEBHOOK_TIMEOUT = http.timeouts(read=5, connect=2)


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
        return references.payout_reference(
            order_id=order_key, attempt=attempt, prefix=REFERENCE_PREFIX, max_length=REFERENCE_MAX_LENGTH
        )

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
        refusal = _REFUSED_AT_ONCE.get(request.recipient.account_identifier[-4:])
        if refusal is not None:
            reason, message = refusal
            raise PspRejected(message, psp=self.name, reason=reason, http_status=400)
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
                if payout.status != "stuck":
                    transaction.on_commit(partial(_webhook_enqueue, payout.pk, payout.complete_at))
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
        elif payout.status == "reversed":  # set by hand (admin, tests): the sandbox took it back
            status = PayoutStatus.REVERSED
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
        if account.endswith("8888"):
            return AccountName(account_identifier=account, account_name=OTHER_HOLDER)
        name = recipient.account_name.strip() or f"SANDBOX ACCOUNT {account[-4:]}"
        return AccountName(account_identifier=account, account_name=name)

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

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """Verify ``X-Sandbox-Signature`` over the raw bytes, then parse the event.

        Raises WebhookSignatureInvalid (missing or wrong signature), PspRejected (signed but not a payout
        event: UNSUPPORTED). ``status`` is a hint; the caller re-reads the payout before acting.
        """
        signature = http.header(headers, SIGNATURE_HEADER)
        if signature is None or not signature.strip():
            raise WebhookSignatureInvalid(f"missing {SIGNATURE_HEADER}", psp=self.name)
        expected = webhook_signature(body)
        if not hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("utf-8")):
            logger.warning("sandbox.webhook.signature_invalid", extra={"psp": self.name})
            raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} does not match the body", psp=self.name)
        try:
            payload = http.loads(body)
        except ValueError:
            raise PspRejected("signed webhook body is not JSON", psp=self.name) from None
        data = payload.get("data") if isinstance(payload, Mapping) else None
        event_type = str(payload.get("event") or "") if isinstance(payload, Mapping) else ""
        if event_type not in WEBHOOK_EVENTS.values() or not isinstance(data, Mapping):
            raise PspRejected(
                f"unsupported sandbox event {event_type[:64]!r}",
                psp=self.name,
                reason=FailureReason.UNSUPPORTED,
            )
        raw_status = str(data.get("status") or "")
        status = _WEBHOOK_STATUS.get(raw_status)
        dedupe_key = f"{event_type}|{data.get('id')}|{raw_status}".encode()
        return WebhookNotice(
            event_id=hashlib.sha256(dedupe_key).hexdigest(),
            event_type=event_type,
            reference=str(data.get("reference") or ""),
            status=status,
            payload=dict(payload),
        )


# --- webhooks: the sandbox PSP calling the node --------------------------------------------------------


def webhook_signature(body: bytes) -> str:
    """Hex HMAC-SHA512 of ``body`` keyed with the hex SHA-256 of SANDBOX_WEBHOOK_SECRET (Lenco's scheme)."""
    return lenco_scheme_signature(body=body, api_key=settings.SANDBOX_WEBHOOK_SECRET)


def webhook_body(payout: SandboxPayout) -> bytes:
    """The event announcing a final payout, as compact JSON (the exact bytes that are signed and sent)."""
    event = {
        "event": WEBHOOK_EVENTS[payout.status],
        "data": {
            "id": payout.transaction_id,
            "reference": payout.reference,
            "status": payout.status,
            "amount": format(payout.amount, "f"),
            "currency": payout.currency,
            "reasonForFailure": payout.failure_message or None,
            "completedAt": payout.complete_at.isoformat().replace("+00:00", "Z"),
        },
    }
    return json.dumps(event, separators=(",", ":")).encode("utf-8")


def _webhook_enqueue(payout_pk: int, complete_at: datetime) -> None:
    """On commit of a new sandbox payout: deliver its webhook now, or when it completes."""
    if not settings.SANDBOX_WEBHOOK_URL:
        return
    _webhook_schedule(payout_pk, when=complete_at, attempt=1)


def _webhook_schedule(payout_pk: int, *, when: datetime, attempt: int) -> None:
    from django_q.tasks import async_task

    from provision import scheduling

    if when <= timezone.now():
        async_task(
            "psp.tasks.sandbox_webhook_send",
            payout_pk=payout_pk,
            attempt=attempt,
            task_name=f"sandbox_webhook:{payout_pk}:{attempt}",
        )
    else:
        scheduling.run_at(
            "psp.tasks.sandbox_webhook_send",
            name=f"sandbox_webhook:{payout_pk}",
            when=when,
            payout_pk=payout_pk,
            attempt=attempt,
        )


def sandbox_webhook_deliver(*, payout_pk: int, attempt: int = 1) -> str:
    """POST the webhook of a final sandbox payout to SANDBOX_WEBHOOK_URL; schedule a retry when it fails.

    Runs in a worker, outside any transaction and lock. Returns what happened: ``disabled``, ``not_final``
    (rescheduled for ``complete_at``; a stuck payout never completes), ``delivered``, ``retry`` or
    ``abandoned``.
    """
    url = settings.SANDBOX_WEBHOOK_URL
    if not url:
        return "disabled"
    payout = SandboxPayout.objects.get(pk=payout_pk)
    now = timezone.now()
    if payout.status not in WEBHOOK_EVENTS or payout.complete_at > now:
        if payout.status in WEBHOOK_EVENTS:
            _webhook_schedule(payout_pk, when=payout.complete_at, attempt=attempt)
        return "not_final"
    body = webhook_body(payout)
    log_extra = {"psp": "sandbox", "reference": payout.reference, "attempt": attempt}
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: webhook_signature(body)},
            timeout=WEBHOOK_TIMEOUT,
            allow_redirects=False,
        )
        status = response.status_code
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    except requests.RequestException as exc:
        error = type(exc).__name__
    if not error:
        logger.info("sandbox.webhook.delivered", extra=log_extra)
        return "delivered"
    if attempt >= WEBHOOK_ATTEMPTS:
        logger.warning("sandbox.webhook.abandoned", extra={**log_extra, "error": error})
        return "abandoned"
    logger.warning("sandbox.webhook.retry", extra={**log_extra, "error": error})
    _webhook_schedule(payout_pk, when=now + WEBHOOK_RETRY_DELAY * attempt, attempt=attempt + 1)
    return "retry"


def build_adapter() -> SandboxAdapter:
    """The sandbox PSP (its state is in the node's database; settings are read where used)."""
    return SandboxAdapter()
