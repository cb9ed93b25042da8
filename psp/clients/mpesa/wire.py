"""Daraja's wire format: what the M-Pesa adapter sends, and how it reads the synchronous acknowledgements,
the gateway's errors and the Result callbacks (protocol/mpesa-daraja.md). No state, no database access."""

from __future__ import annotations

import base64
import enum
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from psp.base import FailureReason, PspRejected, PspUnavailable
from psp.clients import http
from psp.models import DarajaAnswer

logger = logging.getLogger(__name__)

NAME = "mpesa"
CURRENCY = "KES"
INSTITUTIONS = frozenset({"SAFAKEPC"})  # the aggregator's code for M-Pesa Kenya
CALLBACK_PREFIX = "/webhooks/daraja"
# How the callback view hands the URL's segments to ``parse_webhook`` (not headers Daraja sends).
TOKEN_HEADER = "X-Daraja-Token"  # noqa: S105 (a header name, not a secret)
KIND_HEADER = "X-Daraja-Kind"
KEY_HEADER = "X-Daraja-Key"
REFERENCE_PREFIX = "pn"
REFERENCE_MAX_LENGTH = 36
TOKEN_PATH = "/oauth/v1/generate"  # noqa: S105 (a path, not a secret)
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
STATUS_PATH = "/mpesa/transactionstatus/v1/query"
BALANCE_PATH = "/mpesa/accountbalance/v1/query"
COMMAND_ID = "BusinessPayment"
IDENTIFIER_TYPE_SHORTCODE = "4"
DUPLICATE_CODE = "500.002.1001"
_EAT = dt_timezone(timedelta(hours=3))
_REFERENCE_RE = re.compile(r"[A-Za-z0-9_-]{1,36}")
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MSISDN_RE = re.compile(r"254[17][0-9]{8}")
_INVALID_TOKEN_CODES = frozenset({"401.002.01", "400.003.01"})
# Transaction Status ``TransactionStatus`` values (protocol section 8): Completed = paid; these = final,
# not paid; anything else (Initiated, Authorized, Pending Authorized, or a value nobody documented) =
# still pending, and an undocumented one is logged as an error for a human to look at.
_FAILED_STATUSES = frozenset({"cancelled", "declined", "expired"})
_PENDING_STATUSES = frozenset({"initiated", "authorized", "pending authorized", "pending"})
# Codes of a status query that failed as a query (our credentials or roles): an operator must act.
_OPERATOR_CODES = frozenset({"18", "20", "21", "22", "2001", "2006", "8006", "SFC_IC0003"})
# Synchronous ``ResponseCode`` refusals and B2C Result codes (protocol section 5) -> our reason.
RESULT_REASONS = {
    "1": FailureReason.INSUFFICIENT_FUNDS,
    "2": FailureReason.LIMIT_EXCEEDED,
    "3": FailureReason.LIMIT_EXCEEDED,
    "4": FailureReason.LIMIT_EXCEEDED,
    "8": FailureReason.LIMIT_EXCEEDED,
    "2040": FailureReason.RECIPIENT_INVALID,
    "SFC_IC0003": FailureReason.RECIPIENT_INVALID,
}


class CallbackKind(enum.StrEnum):
    """The last-but-one segment of a callback URL: which request it answers, and whether it is a Result
    or a QueueTimeOut."""

    PAYMENT = "payment"
    PAYMENT_TIMEOUT = "payment-timeout"
    STATUS = "status"
    STATUS_TIMEOUT = "status-timeout"
    BALANCE = "balance"
    BALANCE_TIMEOUT = "balance-timeout"


def security_credential(*, password: str, certificate: bytes) -> str:
    """Daraja's ``SecurityCredential``: the initiator password encrypted with the RSA public key of
    Safaricom's certificate (PEM or DER), PKCS #1 v1.5 padding, base64. Randomised: differs on every call,
    and every value stays valid."""
    try:
        cert = x509.load_pem_x509_certificate(certificate)
    except ValueError:
        cert = x509.load_der_x509_certificate(certificate)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the M-Pesa certificate does not hold an RSA public key")
    return base64.b64encode(key.encrypt(password.encode("utf-8"), padding.PKCS1v15())).decode("ascii")


# --- what we send ---------------------------------------------------------------------------------


def callback_key_valid(key: str) -> bool:
    """Whether a callback URL's last segment can be one of ours (a reference or a query's key)."""
    return bool(_KEY_RE.fullmatch(key))


def checked_reference(reference: str) -> str:
    if not _REFERENCE_RE.fullmatch(reference):
        raise PspRejected(
            "an M-Pesa OriginatorConversationID is 1-36 characters of [A-Za-z0-9_-]",
            psp=NAME,
            reason=FailureReason.OTHER,
        )
    return reference


def msisdn_of(identifier: str) -> str:
    """The recipient as Daraja's ``PartyB``: 12 digits, ``2547…`` or ``2541…``, no ``+``. Local forms
    (``07…``, ``01…``, ``7…``) get the country code. Raises PspRejected(RECIPIENT_INVALID)."""
    digits = re.sub(r"[\s\-().]", "", identifier).removeprefix("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if len(digits) == 10 and digits.startswith("0"):
        digits = "254" + digits[1:]
    elif len(digits) == 9 and digits[:1] in ("7", "1"):
        digits = "254" + digits
    if not _MSISDN_RE.fullmatch(digits):
        raise PspRejected("not a Kenyan M-Pesa number", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)
    return digits


def remarks(text: str, *, default: str) -> str:
    """``Remarks``: 2-100 printable characters."""
    cleaned = " ".join("".join(char for char in text if char.isprintable()).split())[:100]
    return cleaned if len(cleaned) >= 2 else default


# --- the synchronous answers ----------------------------------------------------------------------


def acknowledgement(answer: http.HttpAnswer) -> tuple[str, str, str] | None:
    """(ResponseCode, ConversationID, ResponseDescription) of a 200 acknowledgement, else None."""
    body = answer.body
    if answer.status != 200 or not isinstance(body, Mapping) or "ResponseCode" not in body:
        return None
    return (
        code_text(body.get("ResponseCode")),
        str(body.get("ConversationID") or ""),
        str(body.get("ResponseDescription") or "")[:200],
    )


def is_zero(code: str) -> bool:
    return bool(code) and set(code) == {"0"}


def is_duplicate(code: str, message: str) -> bool:
    """``500.002.1001`` is documented as "Duplicate OriginatorConversationID" but integrators also get it
    as "System internal error.": only the duplicate text makes it a duplicate (else it is ambiguous)."""
    return code == DUPLICATE_CODE and "duplicate" in message.lower()


def token_refused(answer: http.HttpAnswer) -> bool:
    code = http.error_code(answer.body)
    return (
        answer.status == 401
        or code in _INVALID_TOKEN_CODES
        or "invalid access token" in http.error_message(answer.body).lower()
    )


def _gateway_reason(message: str) -> FailureReason:
    lowered = message.lower()
    if "partyb" in lowered or "msisdn" in lowered or "phone" in lowered:
        return FailureReason.RECIPIENT_INVALID
    if "amount" in lowered:
        return FailureReason.LIMIT_EXCEEDED
    return FailureReason.OTHER


def refusal(answer: http.HttpAnswer, *, operation: str) -> PspUnavailable | PspRejected:
    """A non-acknowledgement that ``http.send`` returned (2xx without ResponseCode, 3xx, 4xx). A 4xx is a
    gateway refusal: nothing was queued. Anything else is unknown."""
    code = http.error_code(answer.body)
    message = http.error_message(answer.body) or f"HTTP {answer.status}"
    common: dict[str, Any] = {
        "psp": NAME,
        "http_status": answer.status,
        "psp_code": code,
        "request_id": answer.request_id or _request_id(answer.body),
    }
    if 400 <= answer.status < 500:
        return PspRejected(
            f"mpesa {operation}: {code} {message}".strip(), reason=_gateway_reason(message), **common
        )
    return PspUnavailable(f"mpesa {operation}: unexpected answer (HTTP {answer.status})", **common)


def _request_id(body: object) -> str:
    value = body.get("requestId") if isinstance(body, Mapping) else None
    return value if isinstance(value, str) else ""


def result_of(body: bytes) -> Mapping[str, Any] | None:
    try:
        payload = http.loads(body) if body.strip() else None
    except ValueError:
        return None
    result = payload.get("Result") if isinstance(payload, Mapping) else None
    return result if isinstance(result, Mapping) else None


def result_parameters(result: Mapping[str, Any]) -> dict[str, Any]:
    """``ResultParameters.ResultParameter`` as {Key: Value}; a single parameter may come as an object
    instead of a list (XML-to-JSON style, UNCONFIRMED): both are read."""
    container = result.get("ResultParameters")
    items = container.get("ResultParameter") if isinstance(container, Mapping) else None
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        return {}
    return {
        str(item["Key"]): item.get("Value")
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("Key"), str)
    }


def code_text(value: object) -> str:
    """A result code as text: Daraja sends numbers in some answers and strings in others."""
    return "" if value is None else str(value).strip()


def says_not_found(code: str, description: str) -> bool:
    """The "no such transaction" answer of a status query is undocumented (UNCONFIRMED): code 2032 (seen on
    another M-Pesa market) or any text saying so. Anything else is not taken as "not found"."""
    text = description.lower()
    return code == "2032" or "does not exist" in text or "not found" in text


def status_fields(result: Mapping[str, Any], *, reference: str) -> dict[str, Any]:
    code = code_text(result.get("ResultCode"))
    description = str(result.get("ResultDesc") or "")[:255]
    fields: dict[str, Any] = {"result_code": code[:32], "result_desc": description}
    if code != "0":
        if says_not_found(code, description):
            return {**fields, "answer": DarajaAnswer.NOT_FOUND}
        log = logger.error if code in _OPERATOR_CODES else logger.warning
        log("mpesa.status.query_failed", extra={"psp": NAME, "reference": reference, "result_code": code})
        return {**fields, "answer": DarajaAnswer.ERROR}
    params = result_parameters(result)
    echoed = str(params.get("OriginatorConversationID") or "")
    if echoed and echoed != reference:
        # The query's URL names the reference; an answer about another payment is not an answer.
        logger.error("mpesa.status.reference_mismatch", extra={"psp": NAME, "reference": reference})
        return {**fields, "answer": DarajaAnswer.ERROR, "result_desc": "answer about another payment"}
    status = str(params.get("TransactionStatus") or "").strip()
    if status.lower() == "completed":
        answer = DarajaAnswer.SUCCEEDED
    elif status.lower() in _FAILED_STATUSES:
        answer = DarajaAnswer.FAILED
    else:
        answer = DarajaAnswer.PENDING
        if status.lower() not in _PENDING_STATUSES:
            logger.error(
                "mpesa.status.unknown_status",
                extra={"psp": NAME, "reference": reference, "status": status[:32]},
            )
    receipt = params.get("ReceiptNo")
    return {
        **fields,
        "answer": answer,
        "transaction_status": status[:32],
        "receipt": str(receipt)[:64] if isinstance(receipt, str | int) else "",
        "result_amount": http.decimal_or_none(params.get("Amount")),
        "fee": _charge(params.get("DebitPartyCharges")),
        "completed_at": _daraja_time(params.get("FinalisedTime")),
    }


def balance_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    """The Utility account's first amount ("Available Funds"): B2C debits the Utility account. The meaning
    of amounts 2-4 is UNCONFIRMED and they are not used."""
    code = code_text(result.get("ResultCode"))
    description = str(result.get("ResultDesc") or "")[:255]
    fields: dict[str, Any] = {"result_code": code[:32], "result_desc": description}
    if code != "0":
        logger.warning("mpesa.balance.query_failed", extra={"psp": NAME, "result_code": code})
        return {**fields, "answer": DarajaAnswer.ERROR}
    text = result_parameters(result).get("AccountBalance")
    for account in str(text or "").split("&"):
        parts = account.split("|")
        if len(parts) >= 3 and parts[0].strip().lower() == "utility account":
            amount = http.decimal_or_none(parts[2])
            currency = parts[1].strip().upper()
            if amount is not None and currency:
                return {
                    **fields,
                    "answer": DarajaAnswer.BALANCE,
                    "balance_currency": currency[:7],
                    "balance": amount,
                }
    logger.warning("mpesa.balance.no_utility_account", extra={"psp": NAME})
    return {**fields, "answer": DarajaAnswer.ERROR, "result_desc": "no Utility Account in the answer"}


def _charge(value: object) -> Decimal | None:
    """``"Fee For B2C Payment|KES|22.40"`` -> 22.40."""
    parts = str(value or "").split("|")
    return http.decimal_or_none(parts[-1]) if len(parts) == 3 else None


def _daraja_time(value: object) -> datetime | None:
    """``yyyyMMddHHmmss``, taken as East Africa Time (the time zone is not stated: UNCONFIRMED)."""
    try:
        return datetime.strptime(str(value), "%Y%m%d%H%M%S").replace(tzinfo=_EAT)
    except ValueError:
        return None
