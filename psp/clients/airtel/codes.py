"""Airtel's answers: the envelope, the response-code tables and what each code means for a payout
(protocol/airtel-money.md sections 4, 7, 8 and 13).

Many errors come as HTTP 200 with ``status.success: false``: everything here reads the body's codes
(``status.response_code``, then ``status.result_code``, then a gateway's top-level ``status_code``), never
the HTTP status alone. A code this module does not know is never a refusal: the send's outcome is unknown
and the payout is read by reference (the protocol's "unknown codes -> pending + alert").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psp.base import FailureReason

SUCCESS = "DP00900001001"
ESB_SUCCESS = "ESB000010"
# "That transaction.id already exists": the payout is read by its id, never reported failed.
DUPLICATE = frozenset({"DP00900001011", "DP00900001017", "ESB000041"})
NOT_FOUND = frozenset({"DP00900001015", "ESB000045"})
# Airtel has the transaction and is still working on it.
IN_PROCESS = frozenset({"DP00900001006"})
# "May be processed or failed": the outcome is unknown, read it by id (never a new id).
AMBIGUOUS = frozenset({"DP00900001000", "DP00900001014", "ROUTER117", "ESB000001", "ESB000004", "ESB000014"})
# Final refusals: the transaction was not made (or made and failed, TF), no money moved.
REFUSED: Mapping[str, FailureReason] = {
    "DP00900001003": FailureReason.LIMIT_EXCEEDED,  # daily limit reached
    "DP00900001004": FailureReason.LIMIT_EXCEEDED,  # amount out of the defined range
    "DP00900001005": FailureReason.OTHER,  # transaction failed
    "DP00900001007": FailureReason.INSUFFICIENT_FUNDS,  # our disbursement wallet
    "DP00900001009": FailureReason.OTHER,  # initiatee invalid
    "DP00900001010": FailureReason.OTHER,  # payer not an allowed user
    "DP00900001012": FailureReason.RECIPIENT_INVALID,  # mobile number incorrect
    "DP00900001013": FailureReason.OTHER,  # refused; also header/PIN/MSISDN validation (read the message)
    "DP00900001016": FailureReason.OTHER,  # x-signature and payload did not match
    "DP00900001018": FailureReason.OTHER,  # auth/forbidden variants
    "DP00900001019": FailureReason.OTHER,
    "ROUTER001": FailureReason.UNSUPPORTED,  # wallet not configured
    "ROUTER003": FailureReason.OTHER,  # missing header/body parameters
    "ROUTER005": FailureReason.UNSUPPORTED,  # country route not configured
    "ROUTER006": FailureReason.UNSUPPORTED,  # invalid country
    "ROUTER007": FailureReason.UNSUPPORTED,  # not authorised for the country
    "ROUTER110": FailureReason.OTHER,  # partner not found (no X-Country)
    "ROUTER112": FailureReason.UNSUPPORTED,  # invalid currency
    "ROUTER114": FailureReason.OTHER,  # error validating the PIN
    "ROUTER115": FailureReason.OTHER,  # incorrect PIN
    "ROUTER116": FailureReason.OTHER,  # incorrect encrypted PIN
    "ROUTER119": FailureReason.UNSUPPORTED,  # invalid/missing currency
    "ESB000008": FailureReason.OTHER,  # field validation
    "ESB000011": FailureReason.OTHER,  # failed
    "ESB000033": FailureReason.RECIPIENT_INVALID,  # invalid MSISDN length
    "ESB000034": FailureReason.UNSUPPORTED,  # invalid country name
    "ESB000035": FailureReason.UNSUPPORTED,  # invalid currency code
    "ESB000036": FailureReason.RECIPIENT_INVALID,  # MSISDN length / must start with 0
    "ESB000039": FailureReason.UNSUPPORTED,  # vendor not configured for the country
}
# Refusals that say our own set-up is wrong (credentials, PIN, signing, onboarding): logged at ERROR.
OUR_SETUP = frozenset(
    {
        "DP00900001009",
        "DP00900001010",
        "DP00900001016",
        "DP00900001018",
        "DP00900001019",
        "ROUTER001",
        "ROUTER003",
        "ROUTER005",
        "ROUTER007",
        "ROUTER110",
        "ROUTER114",
        "ROUTER115",
        "ROUTER116",
        "ESB000039",
    }
)
PIN_REFUSALS = frozenset({"ROUTER114", "ROUTER115", "ROUTER116"})
KNOWN = frozenset({SUCCESS, *DUPLICATE, *NOT_FOUND, *IN_PROCESS, *AMBIGUOUS, *REFUSED})

# Free text of a refusal or failure -> reason (for DP00900001013 and TF messages); first match wins.
_REASON_TEXTS: tuple[tuple[tuple[str, ...], FailureReason], ...] = (
    (("insufficient", "not enough funds", "low balance"), FailureReason.INSUFFICIENT_FUNDS),
    (("limit",), FailureReason.LIMIT_EXCEEDED),
    (
        ("msisdn", "mobile number", "subscriber", "payee", "barred", "not registered"),
        FailureReason.RECIPIENT_INVALID,
    ),
    (("currency", "country"), FailureReason.UNSUPPORTED),
    (("timed out", "timeout"), FailureReason.TIMEOUT),
)


def reason_from_text(text: str) -> FailureReason:
    lowered = text.lower()
    for needles, reason in _REASON_TEXTS:
        if any(needle in lowered for needle in needles):
            return reason
    return FailureReason.OTHER


def reason_for(code: str, message: str) -> FailureReason:
    reason = REFUSED.get(code, FailureReason.OTHER)
    return reason_from_text(message) if reason is FailureReason.OTHER else reason


@dataclass(frozen=True)
class Envelope:
    """The parts of an Airtel answer every operation reads."""

    response_code: str = ""
    result_code: str = ""
    gateway_code: str = ""  # a router's top-level ``status_code`` (e.g. ROUTER110)
    success: bool | None = None
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(code for code in (self.response_code, self.result_code, self.gateway_code) if code)

    @property
    def code(self) -> str:
        """The code that decides: ``response_code`` when there is one (Airtel: "branch on this"; an unknown
        one stays unknown, whatever ``result_code`` says), else ``result_code``, else the gateway's."""
        return self.codes[0] if self.codes else ""

    @property
    def transaction(self) -> Mapping[str, Any]:
        value = self.data.get("transaction")
        return value if isinstance(value, Mapping) else {}

    @property
    def transaction_status(self) -> str:
        value = self.transaction.get("status")
        return value.strip().upper() if isinstance(value, str) else ""

    @property
    def is_duplicate(self) -> bool:
        return any(code in DUPLICATE for code in self.codes)


def as_text(value: object) -> str:
    """A code or message as text ("" for absent, booleans and structures)."""
    if isinstance(value, bool) or value is None:
        return ""
    return str(value).strip() if isinstance(value, str | int) else ""


def as_flag(value: object) -> bool | None:
    """A JSON boolean, or its text form; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def envelope(body: object) -> Envelope:
    """Read an answer's envelope; an answer without one is an empty Envelope (never an exception)."""
    if not isinstance(body, Mapping):
        return Envelope()
    status = body.get("status")
    status = status if isinstance(status, Mapping) else {}
    data = body.get("data")
    message = (
        as_text(status.get("message"))
        or as_text(body.get("status_message"))
        or as_text(body.get("error_description"))
        or as_text(body.get("message"))
    )
    return Envelope(
        response_code=as_text(status.get("response_code")).upper(),
        result_code=as_text(status.get("result_code")).upper(),
        gateway_code=as_text(body.get("status_code")).upper(),
        success=as_flag(status.get("success")),
        message=message,
        data=data if isinstance(data, Mapping) else {},
    )


def is_invalid_token(body: object) -> bool:
    """The OAuth answer to a product call with an expired or unknown token."""
    return isinstance(body, Mapping) and as_text(body.get("error")).lower() == "invalid_token"


class SendOutcome(enum.Enum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    REFUSED = "refused"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"  # may have been taken: read the payout by its id


def classify_send(answer: Envelope, *, http_status: int) -> SendOutcome:
    """What a disbursement POST's answer says (protocol section 13, step 2).

    Success needs all three: code ``DP00900001001`` (or none with ``ESB000010``), ``success`` not false and
    transaction status ``TS``; a refusal needs a refusal code and no transaction status other than ``TF``.
    Every contradiction, ambiguous or unknown code, and every answer without a code is UNKNOWN, except a
    plain 4xx with no Airtel code at all (a gateway refusing the request: credentials, IP allow-list,
    path), which never reached the disbursement service.
    """
    if answer.is_duplicate:
        return SendOutcome.DUPLICATE
    if http_status == 408:  # Airtel: "read timeout - do enquiry"
        return SendOutcome.UNKNOWN
    code, status = answer.code, answer.transaction_status
    if code == SUCCESS or (not answer.response_code and answer.result_code == ESB_SUCCESS):
        if status == "TS" and answer.success is not False:
            return SendOutcome.SUCCEEDED
        if status == "TIP" and answer.success is not False:
            return SendOutcome.PENDING
        return SendOutcome.UNKNOWN
    if code in IN_PROCESS:
        return SendOutcome.PENDING if status in ("", "TIP") else SendOutcome.UNKNOWN
    if code in REFUSED:
        return (
            SendOutcome.REFUSED
            if status in ("", "TF") and answer.success is not True
            else SendOutcome.UNKNOWN
        )
    if not answer.codes and 400 <= http_status < 500:
        return SendOutcome.REFUSED
    return SendOutcome.UNKNOWN
