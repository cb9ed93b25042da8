"""MTN MoMo Open API, Disbursement product: mobile-money payouts to MTN wallets.

Contract: ``protocol/mtn-momo.md``. What this adapter decides where the document leaves room:

* **References.** ``X-Reference-Id`` is our client reference and the transfer's id. ``make_reference`` derives
  it from ``f"{order_key}:{attempt}"``: the name-based (SHA-1, as ``uuid5``) digest under a fixed namespace,
  with the version bits stamped 4. The document says both "derive it, e.g. UUID v5" and "an X-Reference-Id
  that is not a UUID v4 gives 400"; a v4-shaped derived UUID satisfies both and stays deterministic.
  ``externalId`` carries the same reference (MTN does not enforce its uniqueness; we keep it unique).
* **Recipient convention** (``Recipient.psp_institution``): the payee id type. ``""``, ``"msisdn"`` or
  ``"momo:mtn"`` -> ``MSISDN`` (``account_identifier`` is the phone: ``+``, spaces and dashes are dropped;
  a local ``0…`` number gets ``msisdn_country_code`` when configured); ``"email"`` -> ``EMAIL``;
  ``"party_code"`` -> ``PARTY_CODE``.
* **Currency.** The wire currency is ``MtnMomoConfig.currency`` when set (the sandbox takes EUR only),
  otherwise the order's currency. Balances are reported in the currency MTN states.
* **Duplicates.** A 409 (reference reused) is resolved here: ``get_payout`` and return what MTN has;
  ``DuplicateReference`` only when that read answers 404 (propagation lag).
* **Errors.** MTN's request-level codes are classified on ``code`` as the document asks. Every 5xx is
  ``PspUnavailable`` (with ``psp_code`` and a mapped ``reason``), including the configuration codes MTN
  sends as 500 (``NOT_ALLOWED``, ``INVALID_CURRENCY``...): the HTTP status MTN uses for them is unconfirmed
  and a 500 on the money-moving POST must never be read as "nothing was sent". A 4xx carrying
  ``INTERNAL_PROCESSING_ERROR``/``SERVICE_UNAVAILABLE`` is ``PspUnavailable`` too.
* **Token.** One OAuth token per adapter instance, behind a lock, refreshed 60 s (at most half its life)
  before ``expires_in`` runs out, measured with the injected ``clock``. A 401 on a product call that is not
  the subscription-key refusal drops the token and repeats the call once (the POST repeats with the same
  ``X-Reference-Id``, so it cannot pay twice).
* **Callbacks** are unsigned. ``parse_webhook`` trusts nothing in them: see its docstring.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings

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
    PspUnavailable,
    Recipient,
    WebhookNotice,
    WebhookSignatureInvalid,
)
from psp.clients import http

logger = logging.getLogger(__name__)

NAME = "mtn_momo"
REFERENCE_NAMESPACE = uuid.UUID("6f1d3c52-9a47-5b0e-8f6a-2c9d41e7b803")
CALLBACK_REFERENCE_HEADER = "X-Callback-Reference"
DEFAULT_INSTITUTION_PREFIX = "MOMO"  # the aggregator's MTN MoMo codes: MOMOUGPC, MOMOGHPC, MOMOBJPC, MOMOCIPC
_AUTH_PATH = "/disbursement/token/"
_TRANSFER_PATH = "/disbursement/v1_0/transfer"
_BALANCE_PATH = "/disbursement/v1_0/account/balance"
_ACCOUNT_HOLDER_PATH = "/disbursement/v1_0/accountholder"
_NOTE_MAX_LENGTH = 160
_REFRESH_MARGIN_SECONDS = 60.0

_STATUS = {
    "PENDING": PayoutStatus.PENDING,
    "SUCCESSFUL": PayoutStatus.SUCCEEDED,
    "FAILED": PayoutStatus.FAILED,
}
_PARTY_ID_TYPES = {
    "": "MSISDN",
    "msisdn": "MSISDN",
    "momo:mtn": "MSISDN",
    "email": "EMAIL",
    "party_code": "PARTY_CODE",
}

# Reason codes (protocol section 8), for FAILED transfers and for request-level refusals alike.
REASONS = {
    "PAYEE_NOT_FOUND": FailureReason.RECIPIENT_INVALID,
    "NOT_ENOUGH_FUNDS": FailureReason.INSUFFICIENT_FUNDS,
    "PAYER_LIMIT_REACHED": FailureReason.LIMIT_EXCEEDED,
    "PAYEE_NOT_ALLOWED_TO_RECEIVE": FailureReason.LIMIT_EXCEEDED,
    "NOT_ALLOWED": FailureReason.OTHER,
    "NOT_ALLOWED_TARGET_ENVIRONMENT": FailureReason.OTHER,
    "INVALID_CALLBACK_URL_HOST": FailureReason.OTHER,
    "INVALID_CURRENCY": FailureReason.UNSUPPORTED,
    "INTERNAL_PROCESSING_ERROR": FailureReason.OTHER,
    "SERVICE_UNAVAILABLE": FailureReason.DESTINATION_UNAVAILABLE,
    "COULD_NOT_PERFORM_TRANSACTION": FailureReason.TIMEOUT,
    "APPROVAL_REJECTED": FailureReason.OTHER,
    "EXPIRED": FailureReason.TIMEOUT,
    "TRANSACTION_CANCELED": FailureReason.OTHER,
    "LOW_BALANCE_OR_PAYEE_LIMIT_REACHED_OR_NOT_ALLOWED": FailureReason.OTHER,
}
_UNKNOWN_OUTCOME_CODES = frozenset({"INTERNAL_PROCESSING_ERROR", "SERVICE_UNAVAILABLE"})


def reason_for_code(code: str) -> FailureReason:
    return REASONS.get(code.upper(), FailureReason.OTHER)


@dataclass(frozen=True)
class MtnMomoConfig:
    base_url: str
    subscription_key: str = field(repr=False)
    api_user: str
    api_key: str = field(repr=False)
    target_environment: str = "sandbox"
    currency: str = ""  # wire currency override; "EUR" in the sandbox
    callback_host: str = ""  # e.g. "https://node.example.com"; empty: no X-Callback-Url
    timeout: Decimal | float = Decimal("15")  # read timeout, seconds
    connect_timeout: Decimal | float = Decimal("5")
    currencies: tuple[str, ...] = ()  # order currencies served; empty: any
    institutions: frozenset[str] = frozenset()  # aggregator codes served; empty: codes starting "MOMO"
    msisdn_country_code: str = ""  # e.g. "260": turns a local 0XXXXXXXXX into 260XXXXXXXXX
    connections: int | None = None  # kept for reuse (None: PAYOUT_LANE_THREADS, the calls in flight at once)


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float


class MtnMomoAdapter(PspAdapter):
    name = NAME
    webhooks_signed = False  # callbacks are unsigned: see parse_webhook

    def __init__(
        self,
        config: MtnMomoConfig,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._session = session or http.make_session(connections=config.connections)
        self._timeout = http.timeouts(read=config.timeout, connect=config.connect_timeout)
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

    # --- interface -------------------------------------------------------------------------------

    def supports(self, *, currency: str, institution: str) -> bool:
        if self._config.currencies and currency.upper() not in self._config.currencies:
            return False
        if self._config.institutions:
            return institution in self._config.institutions
        return institution.upper().startswith(DEFAULT_INSTITUTION_PREFIX)

    def make_reference(self, *, order_key: str, attempt: int) -> str:
        if attempt < 0:
            raise ValueError("attempt must not be negative")
        digest = uuid.uuid5(REFERENCE_NAMESPACE, f"{order_key}:{attempt}")
        return str(uuid.UUID(bytes=digest.bytes, version=4))

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        """POST /disbursement/v1_0/transfer with ``X-Reference-Id`` = our reference.

        202 -> PENDING (queued; read the outcome with ``get_payout``). 409 -> the reference exists: returns
        ``get_payout``'s answer, or raises DuplicateReference when that read finds nothing yet.

        Raises PspUnavailable (timeout, connection error, 5xx, 429, unreadable answer, 4xx with
        INTERNAL_PROCESSING_ERROR/SERVICE_UNAVAILABLE: outcome unknown, look up), PspRejected (other 4xx: no
        money moved, ``reason`` mapped from MTN's code), DuplicateReference.
        """
        reference = _checked_reference(request.reference)
        amount = _amount_text(request.amount)
        party_id_type, party_id = self._payee(request.recipient)
        wire_currency = (self._config.currency or request.currency).upper()
        note = _note(request.narration) or "Payout"
        headers = {"X-Reference-Id": reference}
        if self._config.callback_host:
            headers["X-Callback-Url"] = self.callback_url(reference)
        body = {
            "amount": amount,
            "currency": wire_currency,
            "externalId": reference,
            "payee": {"partyIdType": party_id_type, "partyId": party_id},
            "payerMessage": note,
            "payeeNote": note,
        }
        log_extra = {
            "psp": NAME,
            "reference": reference,
            "currency": request.currency,
            "wire_currency": wire_currency,
            "amount": amount,
            "account": http.mask(party_id),
        }
        logger.info("mtn_momo.payout.initiate", extra=log_extra)
        try:
            answer = self._call(
                "POST", _TRANSFER_PATH, operation="transfer_create", headers=headers, json_body=body
            )
        except PspUnavailable as exc:
            logger.warning(
                "mtn_momo.payout.outcome_unknown",
                extra={**log_extra, "http_status": exc.http_status, "psp_code": exc.psp_code},
            )
            raise
        if answer.status == 202:
            logger.info("mtn_momo.payout.accepted", extra=log_extra)
            return PayoutResult(reference=reference, status=PayoutStatus.PENDING, amount=request.amount)
        if answer.status == 409:
            logger.warning("mtn_momo.payout.duplicate_reference", extra=log_extra)
            found = self.get_payout(reference=reference, currency=request.currency)
            if found.status is PayoutStatus.NOT_FOUND:
                raise DuplicateReference(
                    "MTN already has this X-Reference-Id but cannot show it yet; look it up again",
                    psp=NAME,
                    http_status=409,
                    psp_code=http.error_code(answer.body),
                    request_id=answer.request_id,
                )
            logger.info(
                "mtn_momo.payout.duplicate_resolved", extra={**log_extra, "status": str(found.status)}
            )
            return found
        raise _refusal(answer, operation="transfer_create", log_extra=log_extra)

    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        """GET /disbursement/v1_0/transfer/{reference}; NOT_FOUND on 404.

        PENDING/SUCCESSFUL/FAILED are mapped; any other status is UNKNOWN (logged). ``reason`` is accepted
        as a bare code or as ``{code, message}``. Raises PspUnavailable, PspRejected.
        """
        reference = _checked_reference(reference)
        answer = self._call("GET", f"{_TRANSFER_PATH}/{reference}", operation="transfer_get")
        if answer.status == 404:
            return PayoutResult(reference=reference, status=PayoutStatus.NOT_FOUND, raw=_raw(answer.body))
        if answer.status != 200:
            raise _refusal(answer, operation="transfer_get", log_extra={"psp": NAME, "reference": reference})
        if not isinstance(answer.body, Mapping):
            raise _unreadable(answer, operation="transfer_get")
        return _transfer_result(reference, answer.body)

    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        """Check the holder is registered and active; for an MSISDN also fetch the name (basicuserinfo).

        The name is "" when MTN will not give it (non-MSISDN ids, or basicuserinfo refused with a 4xx).
        Raises PspRejected(RECIPIENT_INVALID) when the holder is unknown or inactive; PspUnavailable.
        """
        party_id_type, party_id = self._payee(recipient)
        id_type = party_id_type.lower()
        log_extra = {"psp": NAME, "account": http.mask(party_id)}
        answer = self._call(
            "GET",
            f"{_ACCOUNT_HOLDER_PATH}/{id_type}/{party_id}/active",
            operation="account_holder_active",
            sensitive_url=True,
        )
        if answer.status in (400, 404):
            logger.info("mtn_momo.account.not_found", extra={**log_extra, "http_status": answer.status})
            raise PspRejected(
                "account holder not found",
                psp=NAME,
                reason=FailureReason.RECIPIENT_INVALID,
                http_status=answer.status,
                psp_code=http.error_code(answer.body),
                request_id=answer.request_id,
            )
        if answer.status != 200:
            raise _refusal(answer, operation="account_holder_active", log_extra=log_extra)
        result = answer.body.get("result") if isinstance(answer.body, Mapping) else None
        if result not in (True, False, "true", "false"):
            raise _unreadable(answer, operation="account_holder_active")
        if result in (False, "false"):
            logger.info("mtn_momo.account.inactive", extra=log_extra)
            raise PspRejected(
                "account holder is not registered or not active",
                psp=NAME,
                reason=FailureReason.RECIPIENT_INVALID,
            )
        name = ""
        if party_id_type == "MSISDN":
            info = self._call(
                "GET",
                f"{_ACCOUNT_HOLDER_PATH}/msisdn/{party_id}/basicuserinfo",
                operation="account_holder_info",
                sensitive_url=True,
            )
            if info.status == 200 and isinstance(info.body, Mapping):
                name = _holder_name(info.body)
            else:
                logger.info(
                    "mtn_momo.account.name_unavailable", extra={**log_extra, "http_status": info.status}
                )
        return AccountName(account_identifier=party_id, account_name=name)

    def get_balances(self) -> list[PspBalanceReading]:
        """GET /disbursement/v1_0/account/balance: one reading; MTN gives only ``availableBalance``."""
        answer = self._call("GET", _BALANCE_PATH, operation="balance_get")
        if answer.status != 200:
            raise _refusal(answer, operation="balance_get", log_extra={"psp": NAME})
        body = answer.body if isinstance(answer.body, Mapping) else {}
        available = http.decimal_or_none(body.get("availableBalance"))
        currency = body.get("currency")
        if available is None or not isinstance(currency, str) or not currency:
            raise _unreadable(answer, operation="balance_get")
        return [PspBalanceReading(currency=currency.upper(), total=available, available=available)]

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """Turn an (unsigned) MTN callback into a notice that only says "re-read this reference".

        Contract with the view: MTN sends the callback (PUT or POST) to ``callback_url(reference)``, i.e.
        ``/webhooks/mtn_momo/<reference>``; the view copies that path segment into a synthetic
        ``X-Callback-Reference`` header and passes the raw body and headers here. The body carries no
        reference and no signature, so nothing in it is trusted: ``status`` is the body's status as a hint
        only (None when unreadable, or when the body's ``externalId`` names another payout), and the caller
        **must** call ``get_payout(reference)`` and act only on that answer.

        ``event_id`` is the SHA-256 of reference + raw body. Raises WebhookSignatureInvalid when the
        reference header is missing or not a UUID (the callback cannot be attributed to a payout), and
        WebhookBodyRefused for a body nested too deep, not UTF-8 or holding a lone surrogate.
        """
        raw_reference = (http.header(headers, CALLBACK_REFERENCE_HEADER) or "").strip()
        try:
            reference = str(uuid.UUID(raw_reference))
        except ValueError:
            logger.warning("mtn_momo.webhook.no_reference", extra={"psp": NAME})
            raise WebhookSignatureInvalid(
                f"MTN callback without a valid {CALLBACK_REFERENCE_HEADER}", psp=NAME
            ) from None
        try:
            payload = http.webhook_loads(body, psp=NAME) if body.strip() else {}
        except ValueError:  # not JSON: still a hint to re-read the reference (WebhookBodyRefused is not)
            payload = {}
        payload = payload if isinstance(payload, Mapping) else {}
        raw_status = str(payload.get("status") or "").upper()
        status = _STATUS.get(raw_status)
        external_id = payload.get("externalId")
        if external_id and str(external_id) != reference:
            logger.warning(
                "mtn_momo.webhook.external_id_mismatch", extra={"psp": NAME, "reference": reference}
            )
            status = None
        event_type = f"transfer.{raw_status.lower()}" if raw_status else "transfer.callback"
        logger.info(
            "mtn_momo.webhook.received",
            extra={"psp": NAME, "reference": reference, "event_type": event_type, "status": str(status)},
        )
        return WebhookNotice(
            event_id=hashlib.sha256(reference.encode("ascii") + b"\n" + body).hexdigest(),
            event_type=event_type,
            reference=reference,
            status=status,
            payload=dict(payload),
        )

    def callback_url(self, reference: str) -> str:
        host = self._config.callback_host.strip().rstrip("/")
        if "://" not in host:
            host = f"https://{host}"
        return f"{host}/webhooks/mtn_momo/{reference}"

    # --- helpers ---------------------------------------------------------------------------------

    def _payee(self, recipient: Recipient) -> tuple[str, str]:
        kind = recipient.psp_institution.strip().lower()
        party_id_type = _PARTY_ID_TYPES.get(kind)
        if party_id_type is None:
            raise PspRejected(
                f"unknown MTN payee id type {recipient.psp_institution!r}",
                psp=NAME,
                reason=FailureReason.UNSUPPORTED,
            )
        identifier = recipient.account_identifier.strip()
        if party_id_type != "MSISDN":
            if not identifier or "/" in identifier:
                raise PspRejected("invalid payee id", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)
            return party_id_type, identifier
        digits = re.sub(r"[\s\-().]", "", identifier).removeprefix("+")
        if digits.startswith("00"):
            digits = digits[2:]
        elif digits.startswith("0") and self._config.msisdn_country_code:
            digits = self._config.msisdn_country_code + digits[1:]
        if not re.fullmatch(r"[1-9][0-9]{7,14}", digits):
            raise PspRejected("not a valid MSISDN", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)
        return party_id_type, digits

    def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        headers: Mapping[str, str] | None = None,
        json_body: object = None,
        sensitive_url: bool = False,
    ) -> http.HttpAnswer:
        """One product call with a cached token; on a token 401, a new token and one repeat."""
        for attempt in (1, 2):
            token = self._access_token()
            answer = http.send(
                self._session,
                method,
                self._config.base_url.rstrip("/") + path,
                psp=NAME,
                operation=operation,
                timeout=self._timeout,
                headers={**self._base_headers(), **(headers or {}), "Authorization": f"Bearer {token}"},
                json_body=json_body,
                sensitive_url=sensitive_url,
                reason_for_code=reason_for_code,
            )
            if answer.status == 401 and attempt == 1 and not _is_subscription_key_refusal(answer.body):
                logger.info("mtn_momo.token.rejected", extra={"psp": NAME, "operation": operation})
                self._forget_token(token)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _base_headers(self) -> dict[str, str]:
        return {
            "Ocp-Apim-Subscription-Key": self._config.subscription_key,
            "X-Target-Environment": self._config.target_environment,
        }

    def _access_token(self) -> str:
        with self._token_lock:
            now = self._clock()
            if self._token is not None and now < self._token.refresh_at:
                return self._token.value
            credentials = f"{self._config.api_user}:{self._config.api_key}".encode()
            answer = http.send(
                self._session,
                "POST",
                self._config.base_url.rstrip("/") + _AUTH_PATH,
                psp=NAME,
                operation="token_create",
                timeout=self._timeout,
                headers={
                    **self._base_headers(),
                    "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
                },
            )
            if answer.status != 200:
                raise _refusal(answer, operation="token_create", log_extra={"psp": NAME})
            body = answer.body if isinstance(answer.body, Mapping) else {}
            value = body.get("access_token")
            expires_in = http.decimal_or_none(body.get("expires_in"))
            if not isinstance(value, str) or not value:
                raise _unreadable(answer, operation="token_create")
            lifetime = float(expires_in) if expires_in is not None and expires_in > 0 else 3600.0
            margin = min(_REFRESH_MARGIN_SECONDS, lifetime / 2)
            self._token = _Token(value=value, refresh_at=now + lifetime - margin)
            logger.info("mtn_momo.token.created", extra={"psp": NAME, "expires_in": lifetime})
            return value

    def _forget_token(self, value: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == value:
                self._token = None


# --- module helpers ---------------------------------------------------------------------------------


def _checked_reference(reference: str) -> str:
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        raise PspRejected("an MTN reference must be a UUID", psp=NAME, reason=FailureReason.OTHER) from None


def _amount_text(amount: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros (``Decimal("50.00")`` -> ``"50"``)."""
    if not amount.is_finite() or amount <= 0:
        raise PspRejected("amount must be a positive number", psp=NAME, reason=FailureReason.OTHER)
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _note(text: str) -> str:
    """payerMessage/payeeNote: no quotes or markup characters, at most 160 characters."""
    cleaned = re.sub(r"['\"<>&\\]", "", text)
    return " ".join(cleaned.split())[:_NOTE_MAX_LENGTH]


def _is_subscription_key_refusal(body: object) -> bool:
    return "subscription key" in http.error_message(body).lower()


def _refusal(
    answer: http.HttpAnswer, *, operation: str, log_extra: Mapping[str, object]
) -> PspUnavailable | PspRejected:
    code = http.error_code(answer.body).upper()
    message = http.error_message(answer.body) or f"HTTP {answer.status}"
    common: dict[str, Any] = {
        "psp": NAME,
        "http_status": answer.status,
        "psp_code": code,
        "request_id": answer.request_id,
    }
    if code in _UNKNOWN_OUTCOME_CODES or 200 <= answer.status < 300:
        logger.warning("mtn_momo.call.unknown_outcome", extra={**log_extra, "operation": operation, **common})
        return PspUnavailable(
            f"mtn_momo {operation}: {code or message}", reason=reason_for_code(code), **common
        )
    reason = reason_for_code(code)
    logger.warning(
        "mtn_momo.call.rejected", extra={**log_extra, "operation": operation, **common, "reason": str(reason)}
    )
    return PspRejected(f"mtn_momo {operation}: {code} {message}".strip(), reason=reason, **common)


def _unreadable(answer: http.HttpAnswer, *, operation: str) -> PspUnavailable:
    logger.warning("mtn_momo.call.unexpected_answer", extra={"psp": NAME, "operation": operation})
    return PspUnavailable(
        f"mtn_momo {operation}: unexpected answer (HTTP {answer.status})",
        psp=NAME,
        http_status=answer.status,
        request_id=answer.request_id,
    )


def _raw(value: object) -> Mapping[str, object]:
    return dict(value) if isinstance(value, Mapping) else {}


def _transfer_result(reference: str, body: Mapping[str, Any]) -> PayoutResult:
    raw_status = str(body.get("status") or "").upper()
    status = _STATUS.get(raw_status)
    external_id = body.get("externalId")
    if status is None or (external_id and str(external_id) != reference):
        logger.error(
            "mtn_momo.payout.status_unknown",
            extra={
                "psp": NAME,
                "reference": reference,
                "status": raw_status,
                "external_id_matches": not external_id,
            },
        )
        return PayoutResult(reference=reference, status=PayoutStatus.UNKNOWN, raw=dict(body))
    failure_reason: FailureReason | None = None
    failure_message = ""
    if status is PayoutStatus.FAILED:
        reason = body.get("reason")
        if isinstance(reason, Mapping):
            code = str(reason.get("code") or "")
            detail = str(reason.get("message") or "")
            failure_message = f"{code}: {detail}" if code and detail else code or detail
        else:
            code = str(reason or "")
            failure_message = code
        failure_reason = reason_for_code(code)
    transaction_id = body.get("financialTransactionId")
    return PayoutResult(
        reference=reference,
        status=status,
        psp_transaction_id=str(transaction_id) if isinstance(transaction_id, str | int) else "",
        failure_reason=failure_reason,
        failure_message=failure_message,
        amount=http.decimal_or_none(body.get("amount")),
        raw=dict(body),
    )


def _holder_name(info: Mapping[str, Any]) -> str:
    name = info.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [info.get("given_name"), info.get("family_name")]
    return " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())


def build_adapter() -> MtnMomoAdapter:
    """The MTN MoMo Disbursement adapter from settings (``MTN_MOMO_*``)."""
    return MtnMomoAdapter(
        MtnMomoConfig(
            base_url=settings.MTN_MOMO_BASE_URL,
            subscription_key=settings.MTN_MOMO_SUBSCRIPTION_KEY,
            api_user=settings.MTN_MOMO_API_USER,
            api_key=settings.MTN_MOMO_API_KEY,
            target_environment=settings.MTN_MOMO_TARGET_ENVIRONMENT,
            currency=settings.MTN_MOMO_CURRENCY,
            callback_host=settings.MTN_MOMO_CALLBACK_HOST,
            timeout=settings.MTN_MOMO_TIMEOUT_SECONDS,
        )
    )
