"""Paystack Transfers: NGN, GHS and KES bank payouts and GHS mobile-money payouts from the Paystack balance.

Contract: ``protocol/paystack-transfers.md``. What this adapter decides where the document leaves room (each
point the document marks UNCONFIRMED says so, with how both answers are handled):

* **Recipient convention** (``Recipient.psp_institution``, what ``InstitutionMapping.psp_code`` holds):
  ``"<type>:<code>"`` with Paystack's recipient type and Paystack's bank or operator code from ``GET /bank``
  (``list_banks`` writes codes in that form), e.g. ``"nuban:044"``, ``"ghipss:GH280100"``,
  ``"mobile_money:MTN"``, ``"kepss:01"``. ``"bank:<code>"`` and a bare code mean the currency's bank type
  (NGN ``nuban``, GHS ``ghipss``, KES ``kepss``); ``"momo:<code>"`` means ``mobile_money``. Paid: NGN
  ``nuban``; GHS ``ghipss`` and ``mobile_money``; KES ``kepss``. Anything else is refused (UNSUPPORTED)
  before any request. A GHS mobile number is sent in local form (``0551234987``).
* **Recipients** are created once per (type, code, account, currency) with ``POST /transferrecipient`` and
  their ``RCP_…`` code kept in a ``RecipientStore`` (``PspRecipient`` rows in the node); the adapter holds no
  database code itself. Paystack answers a create for a known account with the existing record, so a lost
  race is harmless. KES bank recipients (``kepss``): whether Paystack lets a given business pay Kenyan bank
  accounts is UNCONFIRMED; if not, the recipient create is refused (no transfer was sent) and the refusal is
  final for this PSP, so another PSP may pay.
* **Amounts** are integers in subunits (kobo, pesewas, cents: 100 per unit in all three currencies). An
  amount with more than two decimals is refused (UNSUPPORTED) before any request: no rounding of money here.
* **References** (``make_reference``, ``psp.references``): ``"pn-" + <order UUID as 32 hex digits> + "-" +
  <attempt>`` (37 to 41 characters), or ``"pn-h" + <26 hex digits of SHA-256> + "-" + <attempt>`` for any
  other order id: lowercase, ``[a-z0-9-]``, at least 16 characters. The upper bound is UNCONFIRMED (50 or
  100): references are kept within 50, which satisfies both.
* **Refusals are checked against the reference.** Any 4xx to ``POST /transfer`` (other than 401/403) is
  followed by ``GET /transfer/verify/:reference``: if Paystack shows a transfer with our reference, that
  is the answer (whatever the refusal said). The text and HTTP status of Paystack's "reference already
  used" error are UNCONFIRMED; this way a duplicate answer in any words is never taken for a refusal. When
  verify shows nothing, a 409 or a message about the reference having been used is ``DuplicateReference``
  (the caller looks up again later and never reports a failure); any other 4xx is ``PspRejected`` with a
  reason mapped from Paystack's text. A verify that fails after a refusal makes the outcome unknown
  (``PspUnavailable``), never a refusal.
* **Verify "not found"**: 404 is NOT_FOUND whatever the text (the message is UNCONFIRMED); a 400 whose
  message says "not found" is NOT_FOUND as well, in case Paystack answers it that way.
* **Statuses** (document section 5): ``success`` SUCCEEDED; ``failed``, ``abandoned``, ``blocked``,
  ``rejected`` FAILED; ``reversed`` REVERSED (the node books it back when it had succeeded, and treats it
  as a failure when it never had); ``pending``, ``received`` and ``otp`` PENDING. ``otp`` is never final and
  never a failure: the transfer waits for an OTP nobody will give (OTP must be off for an automated node) and
  Paystack abandons it after 30 minutes; it is logged as ``paystack.payout.otp_required`` (error) and the
  node's ``psp_otp`` readiness check fails while such a transfer is open. Any other status is UNKNOWN
  (logged; staff review).
* **Transaction id**: ``transfer_code`` (``TRF_…``), else the NIBSS session id, else Paystack's numeric id.
  No fee is reported: verify does not carry one, and the unit of ``fee_charged`` is not documented.
* **No retries inside.** Every call is made once; ``PspUnavailable`` carries ``retry_after`` when Paystack
  sent one (rate limits are UNCONFIRMED: a 429 is retryable whatever its headers).
* **Webhooks.** ``x-paystack-signature`` = hex HMAC-SHA512 of the raw body keyed with the secret key,
  compared in constant time before the body is parsed. ``transfer.success``/``failed``/``reversed`` (and
  any other ``transfer.*``) only make the transfer due for a read; other events carry no reference.
  Paystack sends no event id: ``event_id`` is the SHA-256 of ``event|data.reference|data.status`` (the
  document's dedupe key), or of the raw body when there is no reference.
* **Account names** (``GET /bank/resolve``) are documented for Nigerian NUBANs only; coverage of Ghanaian
  banks, GH mobile money and Kenyan banks is UNCONFIRMED. A 4xx for a NUBAN is RECIPIENT_INVALID; for the
  other types it is UNSUPPORTED (the name check is skipped, nobody is held on a look-up Paystack may not
  offer), and a name it does return is used.
* **Bank lists** (``GET /bank?currency=…``): rows that are inactive, deleted or say ``supports_transfer:
  false`` are left out; each row's ``type`` names its recipient type. The ``type`` values are written
  ``ghipss`` by the recipient API and ``ghipps`` by the bank-list filter in Paystack's spec; which one the
  list *answers* with is UNCONFIRMED, so both are read as ``ghipss``. Pages are followed through
  ``meta.next`` (cursor) when Paystack sends one, at most 50 pages.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from psp import recipients, references
from psp.base import (
    AccountName,
    Bank,
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
    WebhookNotice,
    WebhookSignatureInvalid,
)
from psp.clients import http

logger = logging.getLogger(__name__)

NAME = "paystack"
SIGNATURE_HEADER = "x-paystack-signature"
REFERENCE_PREFIX = "pn-"
REFERENCE_MAX_LENGTH = 50
SUBUNIT_EXPONENT = 2  # kobo, pesewas, cents: 100 per unit in every currency served here
COUNTRY_BY_CURRENCY = {"NGN": "ng", "GHS": "gh", "KES": "ke"}
BANK_TYPE = {"NGN": "nuban", "GHS": "ghipss", "KES": "kepss"}
RECIPIENT_TYPES = {
    "NGN": frozenset({"nuban"}),
    "GHS": frozenset({"ghipss", "mobile_money"}),
    "KES": frozenset({"kepss"}),
}
# UNCONFIRMED: the spec's bank-list filter spells Ghana's bank type "ghipps"; recipients take "ghipss".
_TYPE_ALIASES = {"ghipps": "ghipss", "momo": "mobile_money"}
_REFERENCE_RE = re.compile(r"[a-z0-9_-]{16,50}")
_MAX_BANK_PAGES = 50
_BANK_PAGE_SIZE = "100"
_RECIPIENT_NAME_FALLBACK = "Payout recipient"

_STATUS = {
    "pending": PayoutStatus.PENDING,
    "received": PayoutStatus.PENDING,  # sent to our approval URL (we configure none), not decided yet
    "otp": PayoutStatus.PENDING,  # waiting for an OTP: never final, never a failure (see the module doc)
    "success": PayoutStatus.SUCCEEDED,
    "failed": PayoutStatus.FAILED,
    "abandoned": PayoutStatus.FAILED,  # OTP not given within 30 minutes
    "blocked": PayoutStatus.FAILED,  # the approval URL did not answer in time
    "rejected": PayoutStatus.FAILED,  # the approval URL declined
    "reversed": PayoutStatus.REVERSED,
}
_FINAL_STATUS_TEXT = {
    "abandoned": "abandoned: no OTP within 30 minutes (OTP must be off)",
    "blocked": "blocked: the approval URL did not answer in time",
    "rejected": "rejected by the approval URL",
}
_TRANSFER_EVENTS = {
    "transfer.success": PayoutStatus.SUCCEEDED,
    "transfer.failed": PayoutStatus.FAILED,
    "transfer.reversed": PayoutStatus.REVERSED,
}
# UNCONFIRMED wording of "This reference has already been used on a prior transfer": any of these.
_DUPLICATE_TEXTS = ("already been used", "already used", "already exists", "duplicate", "prior transfer")

# Case-insensitive substrings of Paystack's messages (document section 12), first match wins.
_REASON_TEXTS: tuple[tuple[tuple[str, ...], FailureReason], ...] = (
    (("balance is not enough", "insufficient"), FailureReason.INSUFFICIENT_FUNDS),
    (("limit", "maximum", "minimum", "exceed"), FailureReason.LIMIT_EXCEEDED),
    (("timeout", "timed out"), FailureReason.TIMEOUT),
    (("at the moment", "unavailable", "try again"), FailureReason.DESTINATION_UNAVAILABLE),
    (("bank code is invalid", "invalid bank", "not supported", "unsupported"), FailureReason.UNSUPPORTED),
    (
        (
            "account closed",
            "could not resolve",
            "cannot resolve",
            "invalid account",
            "account number",
            "account name",
            "invalid recipient",
            "recipient",
            "fraud",
            "watch",
        ),
        FailureReason.RECIPIENT_INVALID,
    ),
)


def failure_reason_from_text(text: str) -> FailureReason:
    """Map a Paystack message (a refusal, or a failed transfer's ``gateway_response``) to our reason."""
    lowered = text.lower()
    for needles, reason in _REASON_TEXTS:
        if any(needle in lowered for needle in needles):
            return reason
    return FailureReason.OTHER


def webhook_signature(*, body: bytes, secret_key: str) -> str:
    """Lowercase hex HMAC-SHA512 of the raw ``body`` keyed with the secret key (``x-paystack-signature``)."""
    return hmac.new(secret_key.encode("utf-8"), body, hashlib.sha512).hexdigest()


def to_subunits(amount: Decimal) -> int:
    """The amount in kobo/pesewas/cents, exactly. Raises PspRejected for what does not convert exactly."""
    try:
        if not amount.is_finite() or amount <= 0:
            raise PspRejected("amount must be a positive number", psp=NAME, reason=FailureReason.OTHER)
        scaled = amount.scaleb(SUBUNIT_EXPONENT)
        whole = scaled.to_integral_value()
    except InvalidOperation:
        raise PspRejected("amount out of range", psp=NAME, reason=FailureReason.OTHER) from None
    if whole != scaled:
        raise PspRejected(
            "paystack takes whole subunits (two decimals); quantize the amount first",
            psp=NAME,
            reason=FailureReason.UNSUPPORTED,
        )
    return int(whole)


def from_subunits(value: object) -> Decimal | None:
    """An integer subunit amount from Paystack as a Decimal in units; None when absent or not whole."""
    number = http.decimal_or_none(value)
    if number is None or number != number.to_integral_value():
        return None
    return number.scaleb(-SUBUNIT_EXPONENT)


@dataclass(frozen=True)
class PaystackConfig:
    base_url: str
    secret_key: str = field(repr=False)
    timeout: Decimal | float = Decimal("15")  # read timeout, seconds
    connect_timeout: Decimal | float = Decimal("5")
    currencies: tuple[str, ...] = ("NGN", "GHS", "KES")
    institutions: frozenset[str] = frozenset()  # aggregator institution codes served; empty: any


@dataclass(frozen=True)
class _Destination:
    kind: str  # Paystack's recipient type
    code: str  # Paystack's bank or operator code
    account: str  # account number, or phone in local form

    def key(self, currency: str) -> recipients.RecipientKey:
        return recipients.RecipientKey(
            kind=self.kind, institution_code=self.code, account=self.account, currency=currency
        )


class PaystackAdapter(PspAdapter):
    name = NAME

    def __init__(
        self,
        config: PaystackConfig,
        *,
        recipient_store: recipients.RecipientStore,
        session: requests.Session | None = None,
    ) -> None:
        self._config = config
        self._recipients = recipient_store
        self._session = session or http.make_session()
        self._timeout = http.timeouts(read=config.timeout, connect=config.connect_timeout)

    # --- interface -------------------------------------------------------------------------------

    def supports(self, *, currency: str, institution: str) -> bool:
        if currency.upper() not in self._config.currencies or currency.upper() not in BANK_TYPE:
            return False
        return not self._config.institutions or institution in self._config.institutions

    def make_reference(self, *, order_key: str, attempt: int) -> str:
        return references.payout_reference(
            order_id=order_key, attempt=attempt, prefix=REFERENCE_PREFIX, max_length=REFERENCE_MAX_LENGTH
        )

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        """Ensure the recipient, then ``POST /transfer`` with our reference.

        Returns the transfer as Paystack reports it (PENDING for ``pending``/``received``/``otp``). A 4xx is
        checked against ``GET /transfer/verify/:reference`` first: a transfer Paystack shows is returned.

        Raises PspUnavailable (timeout, connection error, 5xx, 429, non-JSON, 2xx with ``status: false``, or
        a refusal whose verify failed: the outcome is unknown, look up by reference), PspRejected (no
        transfer with this reference exists: nothing was sent; ``reason`` mapped from the text; also a
        refused recipient create, before any transfer), DuplicateReference.
        """
        reference = _checked_reference(request.reference)
        currency = self._checked_currency(request.currency)
        amount = to_subunits(request.amount)
        destination = _destination(request.recipient, currency)
        log_extra = {
            "psp": NAME,
            "reference": reference,
            "currency": currency,
            "amount": str(request.amount),
            "recipient_type": destination.kind,
            "account": http.mask(destination.account),
        }
        recipient_code = self._recipient_code(
            destination, currency=currency, name=request.recipient.account_name, log_extra=log_extra
        )
        body: dict[str, object] = {
            "source": "balance",
            "amount": amount,
            "recipient": recipient_code,
            "reference": reference,
            "reason": (request.narration.strip() or "Payout")[:100],
            "currency": currency,
        }
        logger.info("paystack.payout.initiate", extra=log_extra)
        try:
            answer = self._send("POST", "/transfer", operation="transfer_create", json_body=body)
        except PspUnavailable as exc:
            logger.warning(
                "paystack.payout.outcome_unknown", extra={**log_extra, "http_status": exc.http_status}
            )
            raise
        if 200 <= answer.status < 300:
            result = _result(reference, _envelope_data(answer, operation="transfer_create"))
            logger.info("paystack.payout.accepted", extra={**log_extra, "status": str(result.status)})
            return result
        if answer.status in (401, 403) or not 400 <= answer.status < 500:
            raise _refusal(answer, operation="transfer_create", log_extra=log_extra)
        return self._resolve_refused_send(answer, reference=reference, currency=currency, log_extra=log_extra)

    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        """``GET /transfer/verify/:reference``; NOT_FOUND when Paystack has no transfer with it.

        Raises PspUnavailable (the read's outcome is unknown: try later), PspRejected (e.g. a bad key).
        """
        reference = _checked_reference(reference)
        answer = self._send(
            "GET", f"/transfer/verify/{quote(reference, safe='')}", operation="transfer_verify"
        )
        if 200 <= answer.status < 300:
            return _result(reference, _envelope_data(answer, operation="transfer_verify"))
        if answer.status == 404 or (
            answer.status == 400 and "not found" in http.error_message(answer.body).lower()
        ):
            return PayoutResult(reference=reference, status=PayoutStatus.NOT_FOUND, raw=_raw(answer.body))
        raise _refusal(answer, operation="transfer_verify", log_extra={"psp": NAME, "reference": reference})

    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        """``GET /bank/resolve``: the holder's name.

        Raises PspRejected: RECIPIENT_INVALID when Paystack cannot resolve a NUBAN; UNSUPPORTED when it
        refuses another type (coverage outside Nigeria is unconfirmed) or the recipient is not one Paystack
        pays here. PspUnavailable.
        """
        currency = self._checked_currency(currency)
        destination = _destination(recipient, currency)
        log_extra = {
            "psp": NAME,
            "recipient_type": destination.kind,
            "account": http.mask(destination.account),
        }
        answer = self._send(
            "GET",
            "/bank/resolve",
            operation="account_resolve",
            params={"account_number": destination.account, "bank_code": destination.code},
            sensitive_url=True,
        )
        if 200 <= answer.status < 300:
            data = _envelope_data(answer, operation="account_resolve")
            if not isinstance(data, Mapping):
                raise _unreadable(answer, operation="account_resolve")
            name = data.get("account_name")
            return AccountName(
                account_identifier=str(data.get("account_number") or destination.account),
                account_name=name.strip() if isinstance(name, str) else "",
            )
        if 400 <= answer.status < 500 and answer.status not in (401, 403, 429):
            reason = (
                FailureReason.RECIPIENT_INVALID if destination.kind == "nuban" else FailureReason.UNSUPPORTED
            )
            logger.info(
                "paystack.account.not_resolved",
                extra={**log_extra, "http_status": answer.status, "reason": str(reason)},
            )
            raise PspRejected(
                http.error_message(answer.body) or "account could not be resolved",
                psp=NAME,
                reason=reason,
                http_status=answer.status,
                psp_code=http.error_code(answer.body),
                request_id=answer.request_id,
            )
        raise _refusal(answer, operation="account_resolve", log_extra=log_extra)

    def get_balances(self) -> list[PspBalanceReading]:
        """``GET /balance``: one reading per configured currency Paystack reports (``balance`` in subunits;
        Paystack gives one figure, so ``total`` = ``available``). A row that is not a whole number of
        subunits is logged and left out. Raises PspUnavailable, PspRejected."""
        answer = self._send("GET", "/balance", operation="balance_get")
        if not 200 <= answer.status < 300:
            raise _refusal(answer, operation="balance_get", log_extra={"psp": NAME})
        data = _envelope_data(answer, operation="balance_get")
        if not isinstance(data, list):
            raise _unreadable(answer, operation="balance_get")
        readings: list[PspBalanceReading] = []
        for row in data:
            if not isinstance(row, Mapping):
                continue
            currency = str(row.get("currency") or "").upper()
            if currency not in self._config.currencies:
                continue
            amount = from_subunits(row.get("balance"))
            if amount is None:
                logger.warning("paystack.balance.unreadable", extra={"psp": NAME, "currency": currency})
                continue
            readings.append(PspBalanceReading(currency=currency, total=amount, available=amount))
        return readings

    def list_banks(self, *, currency: str) -> list[Bank]:
        """Paystack's banks and mobile-money operators for ``currency`` that take transfers; ``code`` is
        ``"<recipient type>:<Paystack code>"`` (what ``psp_institution`` takes).

        Raises PspRejected (UNSUPPORTED for a currency not served here, or a refusal), PspUnavailable.
        """
        currency = currency.upper()
        if currency not in self._config.currencies or currency not in RECIPIENT_TYPES:
            raise PspRejected(
                f"paystack lists no banks for {currency}", psp=NAME, reason=FailureReason.UNSUPPORTED
            )
        rows: list[object] = []
        params = {"currency": currency, "perPage": _BANK_PAGE_SIZE, "use_cursor": "true"}
        for _page in range(_MAX_BANK_PAGES):
            answer = self._send("GET", "/bank", operation="banks_list", params=params)
            if not 200 <= answer.status < 300:
                raise _refusal(answer, operation="banks_list", log_extra={"psp": NAME, "currency": currency})
            data = _envelope_data(answer, operation="banks_list")
            if not isinstance(data, list):
                raise _unreadable(answer, operation="banks_list")
            rows.extend(data)
            meta = answer.body.get("meta")
            cursor = meta.get("next") if isinstance(meta, Mapping) else None
            if not isinstance(cursor, str) or not cursor or not data:
                break
            params = {**params, "next": cursor}
        else:
            logger.warning("paystack.banks.too_many_pages", extra={"psp": NAME, "currency": currency})
        banks: list[Bank] = []
        skipped = 0
        for row in rows:
            bank = _bank(row, currency)
            if bank is None:
                skipped += 1
            else:
                banks.append(bank)
        if skipped:
            logger.info(
                "paystack.banks.rows_skipped", extra={"psp": NAME, "currency": currency, "skipped": skipped}
            )
        return banks

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """Verify ``x-paystack-signature`` over the raw bytes, then parse the event.

        Raises WebhookSignatureInvalid (missing or wrong signature), PspRejected (signed but not a JSON
        object). ``status`` is a hint for ``transfer.*`` events and None for every other event (which also
        carries no reference); the caller re-reads the transfer with ``get_payout`` before acting.
        """
        signature = http.header(headers, SIGNATURE_HEADER)
        if signature is None or not signature.strip():
            logger.warning("paystack.webhook.signature_missing", extra={"psp": NAME})
            raise WebhookSignatureInvalid("missing x-paystack-signature", psp=NAME)
        expected = webhook_signature(body=body, secret_key=self._config.secret_key)
        if not hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("utf-8")):
            logger.warning("paystack.webhook.signature_invalid", extra={"psp": NAME})
            raise WebhookSignatureInvalid("x-paystack-signature does not match the body", psp=NAME)
        try:
            payload = http.loads(body)
        except ValueError:
            raise PspRejected("signed webhook body is not JSON", psp=NAME) from None
        if not isinstance(payload, Mapping):
            raise PspRejected("signed webhook body is not a JSON object", psp=NAME)
        event_type = str(payload.get("event") or "")
        data = payload.get("data")
        data = data if isinstance(data, Mapping) else {}
        data_reference = data.get("reference")
        is_transfer = event_type.startswith("transfer.")
        reference = str(data_reference) if is_transfer and isinstance(data_reference, str) else ""
        status: PayoutStatus | None = None
        if is_transfer:
            status = _STATUS.get(str(data.get("status") or "").lower()) or _TRANSFER_EVENTS.get(event_type)
        dedupe_key = f"{event_type}|{reference}|{data.get('status')}".encode() if reference else body
        logger.info(
            "paystack.webhook.received",
            extra={"psp": NAME, "event_type": event_type, "reference": reference, "status": str(status)},
        )
        return WebhookNotice(
            event_id=hashlib.sha256(dedupe_key).hexdigest(),
            event_type=event_type,
            reference=reference,
            status=status,
            payload=dict(payload),
        )

    # --- helpers ---------------------------------------------------------------------------------

    def _checked_currency(self, currency: str) -> str:
        currency = currency.upper()
        if currency not in self._config.currencies or currency not in BANK_TYPE:
            raise PspRejected(
                f"paystack is not configured for {currency}", psp=NAME, reason=FailureReason.UNSUPPORTED
            )
        return currency

    def _recipient_code(
        self, destination: _Destination, *, currency: str, name: str, log_extra: Mapping[str, object]
    ) -> str:
        """The saved ``RCP_…`` code of the destination, or a new one from ``POST /transferrecipient``.

        Raises PspRejected (Paystack refused the recipient: no transfer was sent), PspUnavailable.
        """
        key = destination.key(currency)
        saved = self._recipients.get(key)
        if saved:
            return saved
        body = {
            "type": destination.kind,
            "name": name.strip()[:100] or _RECIPIENT_NAME_FALLBACK,
            "account_number": destination.account,
            "bank_code": destination.code,
            "currency": currency,
        }
        answer = self._send("POST", "/transferrecipient", operation="recipient_create", json_body=body)
        if not 200 <= answer.status < 300:
            raise _refusal(answer, operation="recipient_create", log_extra=log_extra)
        data = _envelope_data(answer, operation="recipient_create")
        code = data.get("recipient_code") if isinstance(data, Mapping) else None
        if not isinstance(code, str) or not code.strip():
            raise _unreadable(answer, operation="recipient_create")
        code = code.strip()
        self._recipients.put(key, code)
        logger.info("paystack.recipient.created", extra=dict(log_extra))
        return code

    def _resolve_refused_send(
        self, answer: http.HttpAnswer, *, reference: str, currency: str, log_extra: Mapping[str, object]
    ) -> PayoutResult:
        """A 4xx to ``POST /transfer``: what Paystack shows for the reference decides, not the refusal."""
        duplicate = _is_duplicate(answer)
        try:
            found = self.get_payout(reference=reference, currency=currency)
        except PspError as exc:
            logger.warning(
                "paystack.payout.refusal_unverified",
                extra={**log_extra, "http_status": answer.status, "verify_error": exc.message[:200]},
            )
            raise PspUnavailable(
                f"paystack transfer_create: refused (HTTP {answer.status}) and the reference could not be "
                "read back",
                psp=NAME,
                http_status=answer.status,
                psp_code=http.error_code(answer.body),
                request_id=answer.request_id,
            ) from exc
        if found.status is not PayoutStatus.NOT_FOUND:
            logger.warning(
                "paystack.payout.refused_but_exists",
                extra={**log_extra, "http_status": answer.status, "status": str(found.status)},
            )
            return found
        if duplicate:
            logger.warning("paystack.payout.duplicate_not_shown", extra=dict(log_extra))
            raise DuplicateReference(
                "paystack already has this reference but cannot show it; look it up again",
                psp=NAME,
                http_status=answer.status,
                psp_code=http.error_code(answer.body),
                request_id=answer.request_id,
            )
        raise _refusal(answer, operation="transfer_create", log_extra=log_extra)

    def _send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        sensitive_url: bool = False,
    ) -> http.HttpAnswer:
        return http.send(
            self._session,
            method,
            self._config.base_url.rstrip("/") + path,
            psp=NAME,
            operation=operation,
            timeout=self._timeout,
            headers={"Authorization": f"Bearer {self._config.secret_key}"},
            params=params,
            json_body=json_body,
            sensitive_url=sensitive_url,
        )


# --- module helpers ---------------------------------------------------------------------------------


def _checked_reference(reference: str) -> str:
    if not _REFERENCE_RE.fullmatch(reference):
        raise PspRejected(
            "paystack references are 16-50 characters of lowercase letters, digits, '-' and '_'",
            psp=NAME,
            reason=FailureReason.OTHER,
        )
    return reference


def _destination(recipient: Recipient, currency: str) -> _Destination:
    raw = recipient.psp_institution.strip()
    prefix, separator, rest = raw.partition(":")
    if separator:
        kind = prefix.strip().lower()
        kind = BANK_TYPE[currency] if kind == "bank" else _TYPE_ALIASES.get(kind, kind)
        code = rest.strip()
    else:
        kind, code = BANK_TYPE[currency], raw
    if kind not in RECIPIENT_TYPES[currency]:
        raise PspRejected(
            f"paystack pays no {kind!r} recipients in {currency}", psp=NAME, reason=FailureReason.UNSUPPORTED
        )
    if not code:
        raise PspRejected(
            "recipient has no paystack bank code (institution not mapped)",
            psp=NAME,
            reason=FailureReason.UNSUPPORTED,
        )
    if kind == "mobile_money":
        return _Destination(kind, code, _ghana_local_phone(recipient.account_identifier))
    account = re.sub(r"[\s-]", "", recipient.account_identifier)
    if kind == "nuban" and not re.fullmatch(r"[0-9]{10}", account):
        raise PspRejected("a NUBAN has 10 digits", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)
    if not re.fullmatch(r"[0-9A-Za-z]{4,34}", account):
        raise PspRejected("not a valid account number", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)
    return _Destination(kind, code, account)


def _ghana_local_phone(raw: str) -> str:
    """``0XXXXXXXXX`` from a local or international (``+233…``/``233…``) Ghanaian mobile number."""
    digits = re.sub(r"[\s\-().]", "", raw).removeprefix("+")
    if re.fullmatch(r"233[0-9]{9}", digits):
        return "0" + digits[3:]
    if re.fullmatch(r"0[0-9]{9}", digits):
        return digits
    if re.fullmatch(r"[1-9][0-9]{8}", digits):
        return "0" + digits
    raise PspRejected("not a valid Ghanaian mobile number", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)


def _bank(row: object, currency: str) -> Bank | None:
    """A transfer-capable row of ``GET /bank`` as a Bank, or None (logged by the caller as skipped)."""
    if not isinstance(row, Mapping):
        return None
    if row.get("active") is False or row.get("is_deleted") is True or row.get("supports_transfer") is False:
        return None
    code, name = row.get("code"), row.get("name")
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if not isinstance(code, str) or not code.strip() or not isinstance(name, str) or not name.strip():
        return None
    row_type = str(row.get("type") or "").strip().lower()
    kind = _TYPE_ALIASES.get(row_type, row_type)
    if kind not in RECIPIENT_TYPES[currency]:
        return None
    return Bank(code=f"{kind}:{code.strip()}", name=name.strip(), country=COUNTRY_BY_CURRENCY[currency])


def _envelope_data(answer: http.HttpAnswer, *, operation: str) -> object:
    """``data`` of a 2xx envelope; a 2xx with ``status: false`` or no envelope is an unknown outcome."""
    body = answer.body
    if not isinstance(body, Mapping) or body.get("status") is not True:
        raise _unreadable(answer, operation=operation)
    return body.get("data")


def _unreadable(answer: http.HttpAnswer, *, operation: str) -> PspUnavailable:
    logger.warning(
        "paystack.call.unexpected_answer",
        extra={"psp": NAME, "operation": operation, "http_status": answer.status},
    )
    return PspUnavailable(
        f"paystack {operation}: unexpected answer (HTTP {answer.status})",
        psp=NAME,
        http_status=answer.status,
        psp_code=http.error_code(answer.body),
        request_id=answer.request_id,
    )


def _refusal(
    answer: http.HttpAnswer, *, operation: str, log_extra: Mapping[str, object]
) -> PspUnavailable | PspRejected:
    """A 4xx is a refusal with a reason from the text; anything else here (2xx, 3xx) is an unknown outcome."""
    if not 400 <= answer.status < 500:
        return _unreadable(answer, operation=operation)
    message = http.error_message(answer.body) or f"HTTP {answer.status}"
    reason = FailureReason.OTHER if answer.status in (401, 403) else failure_reason_from_text(message)
    common: dict[str, Any] = {
        "psp": NAME,
        "http_status": answer.status,
        "psp_code": http.error_code(answer.body),
        "request_id": answer.request_id,
    }
    logger.warning(
        "paystack.call.rejected",
        extra={**log_extra, "operation": operation, **common, "reason": str(reason)},
    )
    return PspRejected(f"paystack {operation}: {message}", reason=reason, **common)


def _is_duplicate(answer: http.HttpAnswer) -> bool:
    if answer.status == 409:
        return True
    message = http.error_message(answer.body).lower()
    return "reference" in message and any(text in message for text in _DUPLICATE_TEXTS)


def _raw(value: object) -> Mapping[str, object]:
    return dict(value) if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _failure_text(data: Mapping[str, Any], raw_status: str) -> str:
    """Why a transfer did not go through: its ``gateway_response`` or ``failures`` text, else its status."""
    failures = data.get("failures")
    if isinstance(failures, Mapping):
        failures = failures.get("message") or failures.get("reason")
    for candidate in (data.get("gateway_response"), failures):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return _FINAL_STATUS_TEXT.get(raw_status, raw_status)


def _result(reference: str, data: object) -> PayoutResult:
    if not isinstance(data, Mapping):
        return _unknown(reference, data, why="no transfer object")
    echoed = data.get("reference")
    if echoed and echoed != reference:
        return _unknown(reference, data, why="reference mismatch")
    raw_status = str(data.get("status") or "").lower()
    status = _STATUS.get(raw_status)
    if status is None:
        return _unknown(reference, data, why=f"status {raw_status!r}")
    if raw_status == "otp":
        logger.error(
            "paystack.payout.otp_required",
            extra={"psp": NAME, "reference": reference, "hint": "turn OTP off for transfers"},
        )
    session = data.get("session")
    session_id = _text(session.get("id")) if isinstance(session, Mapping) else ""
    failed = status in (PayoutStatus.FAILED, PayoutStatus.REVERSED)
    failure_text = _failure_text(data, raw_status) if failed else ""
    finished = data.get("transferred_at") if status is PayoutStatus.SUCCEEDED else None
    if failed:
        finished = data.get("updatedAt") or data.get("updated_at")
    return PayoutResult(
        reference=reference,
        status=status,
        psp_transaction_id=_text(data.get("transfer_code")) or session_id or _text(data.get("id")),
        failure_reason=failure_reason_from_text(failure_text) if failed else None,
        failure_message=failure_text,
        amount=from_subunits(data.get("amount")),
        completed_at=http.datetime_or_none(finished),
        raw=dict(data),
    )


def _unknown(reference: str, data: object, *, why: str) -> PayoutResult:
    logger.error("paystack.payout.status_unknown", extra={"psp": NAME, "reference": reference, "why": why})
    return PayoutResult(reference=reference, status=PayoutStatus.UNKNOWN, raw=_raw(data))


def build_adapter() -> PaystackAdapter:
    """The Paystack adapter from settings (``PAYSTACK_*``), its recipients kept in ``PspRecipient``."""
    return PaystackAdapter(
        PaystackConfig(
            base_url=settings.PAYSTACK_BASE_URL,
            secret_key=settings.PAYSTACK_SECRET_KEY,
            timeout=settings.PAYSTACK_TIMEOUT_SECONDS,
        ),
        recipient_store=recipients.DatabaseRecipientStore(NAME),
    )
