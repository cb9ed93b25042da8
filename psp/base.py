"""The one interface every payment service provider adapter implements.

Adapters speak to one PSP over HTTP and return the frozen dataclasses below; raw JSON never leaves an
adapter. They hold no database state (the sandbox adapter is the exception: it *is* a PSP, and keeps
its state in the node's database so web and worker processes agree).

Money-moving rule: ``initiate_payout`` is always called with a client reference that was stored before
the call; after any unknown outcome the caller asks ``get_payout(reference)`` before anything else.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class PayoutStatus(enum.StrEnum):
    PENDING = "pending"  # the PSP has it and has not finished
    SUCCEEDED = "succeeded"  # money sent (final)
    FAILED = "failed"  # not sent, funds not taken or returned (final)
    NOT_FOUND = "not_found"  # the PSP has no payout with this reference (only from get_payout)
    UNKNOWN = "unknown"  # the PSP answered something we cannot interpret; a human must look
    REVERSED = "reversed"  # the PSP paid it, then took the money back (returned to our balance)


class AmountRefusal(enum.StrEnum):
    """Why a PSP cannot pay an amount (its own per-transaction rules), known before any order is accepted."""

    BELOW_MINIMUM = "below_minimum"
    ABOVE_MAXIMUM = "above_maximum"
    UNPAYABLE = "unpayable"  # e.g. fractions of a unit the PSP cannot send


class FailureReason(enum.StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    RECIPIENT_INVALID = "recipient_invalid"
    DESTINATION_UNAVAILABLE = "destination_unavailable"
    TIMEOUT = "timeout"
    LIMIT_EXCEEDED = "limit_exceeded"
    UNSUPPORTED = "unsupported"
    OTHER = "other"


@dataclass(frozen=True)
class Recipient:
    institution: str  # the aggregator's institution code, e.g. ABNGNGLA
    account_identifier: str  # account number or phone number
    account_name: str = ""
    psp_institution: str = ""  # the PSP's own code for the institution (bank code, operator)


@dataclass(frozen=True)
class PayoutRequest:
    reference: str  # our client reference, derived from the order; the idempotency key
    amount: Decimal
    currency: str
    recipient: Recipient
    narration: str = ""


@dataclass(frozen=True)
class PayoutResult:
    reference: str
    status: PayoutStatus
    psp_transaction_id: str = ""  # the PSP's own id (what we report as txId when it exists)
    failure_reason: FailureReason | None = None
    failure_message: str = ""  # the PSP's raw text
    fee: Decimal | None = None
    amount: Decimal | None = None
    completed_at: datetime | None = None
    raw: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class AccountName:
    account_identifier: str
    account_name: str


@dataclass(frozen=True)
class PspBalanceReading:
    currency: str
    total: Decimal
    available: Decimal


@dataclass(frozen=True)
class Bank:
    """One institution in a PSP's own bank list."""

    code: str  # what the PSP takes as the institution in a payout (NIP code, Lenco bankId)
    name: str
    country: str = ""


@dataclass(frozen=True)
class WebhookNotice:
    """What a verified webhook says: which payout, and (as a hint) its new status."""

    event_id: str
    event_type: str
    reference: str
    status: PayoutStatus | None
    payload: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)


class PspError(Exception):
    """Base of every adapter error; ``retryable`` says whether the same call may succeed later."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        psp: str,
        reason: FailureReason = FailureReason.OTHER,
        http_status: int | None = None,
        psp_code: str = "",
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.psp = psp
        self.reason = reason
        self.http_status = http_status
        self.psp_code = psp_code
        self.request_id = request_id


class PspUnavailable(PspError):
    """Network error, timeout, 5xx, 429, or an unreadable answer: the outcome of the call is unknown."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class PspRejected(PspError):
    """The PSP refused the call for good (invalid account, bad request): no money moved."""


class DuplicateReference(PspRejected):
    """The PSP already has a payout with this reference: look it up, never report a failure."""


class WebhookBodyRefused(PspRejected):
    """A webhook body the node refuses to read at all (too deep, not UTF-8, a lone surrogate): answered
    with a 400 and never stored."""


class WebhookSignatureInvalid(PspError):
    """A webhook whose signature does not verify; it is stored but never acted on."""


class PspAdapter(abc.ABC):
    """A payment service provider. ``name`` is what the node reports to the aggregator as ``psp``.

    ``webhooks_signed`` is false for a PSP whose webhooks carry no signature (MTN MoMo's callbacks): the
    node then stores them only about its own transfers, a bounded number each (``psp.services.webhooks``).
    """

    name: str
    webhooks_signed: bool = True

    @abc.abstractmethod
    def supports(self, *, currency: str, institution: str) -> bool:
        """Whether this PSP can pay the given currency and (aggregator) institution code."""

    def amount_refusal(self, *, currency: str, amount: Decimal) -> AmountRefusal | None:
        """Why this PSP cannot pay ``amount`` in ``currency`` (per-transaction limits), or None when it can.

        Routing leaves a PSP out of an order it would refuse for its amount, so the order is declined (or
        goes to another PSP) before it is accepted instead of failing after."""
        return None

    @abc.abstractmethod
    def make_reference(self, *, order_key: str, attempt: int) -> str:
        """The client reference for an order's payout attempt: stable, derived, PSP-valid."""

    @abc.abstractmethod
    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        """Send the payout. Raises PspUnavailable (unknown outcome), PspRejected, DuplicateReference."""

    @abc.abstractmethod
    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        """What the PSP knows of ``reference``; ``NOT_FOUND`` when it has nothing."""

    @abc.abstractmethod
    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        """The account holder's name. Raises PspRejected(RECIPIENT_INVALID) when it does not exist."""

    @abc.abstractmethod
    def get_balances(self) -> list[PspBalanceReading]:
        """The PSP account's balance per currency."""

    def list_banks(self, *, currency: str) -> list[Bank]:
        """The institutions this PSP pays in ``currency``. Raises PspRejected(UNSUPPORTED), PspUnavailable."""
        raise PspRejected("this PSP lists no banks", psp=self.name, reason=FailureReason.UNSUPPORTED)

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """Verify the signature (WebhookSignatureInvalid) and parse the event."""
        raise PspRejected("this PSP sends no webhooks", psp=self.name, reason=FailureReason.UNSUPPORTED)
