"""Lenco: NGN bank payouts over the v1 API, ZMW/MWK bank and mobile-money payouts over the v2 API.

Contract: ``protocol/lenco.md``. What this adapter decides where the document leaves room:

* **v1 endpoints.** NGN payouts use the queued ``POST /transfer`` and read back with
  ``GET /transfer/by-reference/:reference``, not ``POST /transactions`` + ``/transaction-by-reference``:
  the queued POST answers at once (fewer ambiguous read timeouts on the only money-moving call), and the
  not-found answer of ``/transfer/by-reference`` is documented (400 "Transaction was not found") while that
  of ``/transaction-by-reference`` is only assumed.
* **Recipient convention** (``Recipient.psp_institution``):

  - NGN (v1): the NIP bank code, e.g. ``"000014"`` (``"bank:000014"`` is accepted too);
    ``account_identifier`` is the 10-digit NUBAN.
  - ZMW / MWK bank account (v2): Lenco's ``bankId`` from ``GET /banks?country=..``, bare or as
    ``"bank:<bankId>"``; ``account_identifier`` is the account number.
  - ZMW / MWK mobile money (v2): ``"momo:<operator>"`` (the bare operator name is accepted as an alias),
    operator ``airtel``/``mtn``/``zamtel`` for ZMW and ``airtel``/``tnm`` for MWK; ``account_identifier``
    is the phone in local (``0971111111``) or international (``+260971111111``) form, sent in local form.
  The country is derived from the currency (NGN ng, ZMW zm, MWK mw).
* **References** (``make_reference``, ``psp.references``): ``"pn-" + <order UUID as 32 hex digits> + "-" +
  <attempt>``, e.g. ``pn-559028af6e154b21bab5052a248db249-1`` (37 characters), when the order id is a UUID
  in canonical form; any other order id gets ``"pn-h" + <26 hex digits of its SHA-256> + "-" + <attempt>``.
  Never more than 40 characters, never the same for two (order id, attempt) pairs.
* **Duplicates.** ``initiate_payout`` resolves a duplicate-reference answer itself: it reads the payout
  back by reference and returns what Lenco has. Only when that read says NOT_FOUND (read-after-write lag)
  does it raise ``DuplicateReference``; the caller then looks up again later and never reports a failure.
* **No retries inside.** Every call is made once; ``PspUnavailable`` carries ``retry_after`` when Lenco sent
  one. The caller owns the back-off and the look-up-before-repost rule.
* **Statuses.** Only the documented values are mapped (``pending``, ``successful``, ``failed``, v1
  ``declined``, v1 request ``queued``/``created``); anything else is ``UNKNOWN`` and logged, never a crash.
* **Webhooks.** ``X-Lenco-Signature`` = hex HMAC-SHA512 of the raw body keyed with the *hex text* of
  SHA-256(API token); Lenco signs no timestamp and sends no event id, so ``event_id`` is the SHA-256 of
  ``event|data.id|data.status`` (the document's dedupe key), or of the raw body when ``data.id`` is absent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import quote

import requests
from django.conf import settings

from psp import references
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

NAME = "lenco"
SIGNATURE_HEADER = "X-Lenco-Signature"
V1_CURRENCIES = frozenset({"NGN"})
COUNTRY_BY_CURRENCY = {"NGN": "ng", "ZMW": "zm", "MWK": "mw"}
MOBILE_MONEY_OPERATORS = {"zm": frozenset({"airtel", "mtn", "zamtel"}), "mw": frozenset({"airtel", "tnm"})}
ALL_OPERATORS = frozenset().union(*MOBILE_MONEY_OPERATORS.values())
MOBILE_MONEY_RESOLVE_COUNTRIES = frozenset({"zm"})  # Lenco resolves Zambian numbers only
V2_BANK_COUNTRIES = frozenset({"ng", "zm"})  # the documented values of ``country`` on bank transfers
PHONE_COUNTRY_CODE = {"zm": "260", "mw": "265"}
REFERENCE_PREFIX = "pn-"
REFERENCE_MAX_LENGTH = 40
_REFERENCE_RE = re.compile(r"[A-Za-z0-9._-]+")
_CENT = Decimal("0.01")
_MAX_ACCOUNT_PAGES = 50

_V1_STATUS = {
    "pending": PayoutStatus.PENDING,
    "successful": PayoutStatus.SUCCEEDED,
    "failed": PayoutStatus.FAILED,
    "declined": PayoutStatus.FAILED,  # v1 only, never explained: final non-success (lenco.md section 9)
}
_V2_STATUS = {
    "pending": PayoutStatus.PENDING,
    "successful": PayoutStatus.SUCCEEDED,
    "failed": PayoutStatus.FAILED,
}
_V1_REQUEST_PENDING = frozenset({"queued", "created"})
_V1_PAYOUT_EVENTS = frozenset({"transaction.successful", "transaction.failed"})
_V2_PAYOUT_EVENTS = frozenset({"transfer.successful", "transfer.failed"})

# errorCode -> reason for a refused call (lenco.md section 3); "04" and "10" are handled before this table.
_ERROR_CODE_REASON = {
    "01": FailureReason.OTHER,
    "02": FailureReason.INSUFFICIENT_FUNDS,
    "03": FailureReason.LIMIT_EXCEEDED,
    "05": FailureReason.RECIPIENT_INVALID,
    "06": FailureReason.OTHER,
    "09": FailureReason.OTHER,
    "11": FailureReason.OTHER,
    "12": FailureReason.RECIPIENT_INVALID,
    "13": FailureReason.OTHER,
}
_DUPLICATE_MESSAGES = frozenset({"duplicate client reference", "duplicate reference"})

# Case-insensitive substrings of ``reasonForFailure`` (and of refusal messages), first match wins.
_REASON_TEXTS: tuple[tuple[tuple[str, ...], FailureReason], ...] = (
    (("insufficient", "not enough funds", "low balance"), FailureReason.INSUFFICIENT_FUNDS),
    (("limit",), FailureReason.LIMIT_EXCEEDED),
    (("timeout", "timed out"), FailureReason.TIMEOUT),
    (("not available", "unavailable", "malfunction"), FailureReason.DESTINATION_UNAVAILABLE),
    (
        (
            "invalid account",
            "account not found",
            "account details",
            "could not be verified",
            "does not exist",
            "invalid beneficiary",
            "invalid recipient",
            "recipient account",
            "mobile number",
            "invalid phone",
            "not registered",
            "dormant",
        ),
        FailureReason.RECIPIENT_INVALID,
    ),
)


def failure_reason_from_text(text: str) -> FailureReason:
    """Map Lenco's free-text ``reasonForFailure`` to our reason; OTHER when nothing matches."""
    lowered = text.lower()
    for needles, reason in _REASON_TEXTS:
        if any(needle in lowered for needle in needles):
            return reason
    return FailureReason.OTHER


def webhook_signature(*, body: bytes, api_key: str) -> str:
    """Lowercase hex HMAC-SHA512 of ``body``, keyed with the hex text of SHA-256 of the API token."""
    key = hashlib.sha256(api_key.encode("utf-8")).hexdigest().encode("ascii")
    return hmac.new(key, body, hashlib.sha512).hexdigest()


@dataclass(frozen=True)
class LencoConfig:
    base_url_v1: str
    base_url_v2: str
    api_key: str = field(repr=False)
    # The account debited for every payout. Empty: per currency, the one active account of that currency
    # listed by GET /accounts (v1 for NGN, v2 otherwise), looked up once and cached.
    account_id: str = ""
    timeout: Decimal | float = Decimal("15")  # read timeout, seconds
    connect_timeout: Decimal | float = Decimal("5")
    currencies: tuple[str, ...] = ("NGN", "ZMW", "MWK")
    institutions: frozenset[str] = frozenset()  # aggregator institution codes served; empty: any
    connections: int | None = None  # kept for reuse (None: PAYOUT_LANE_THREADS, the calls in flight at once)


@dataclass(frozen=True)
class _Destination:
    rail: Literal["bank", "mobile_money"]
    code: str  # NIP bank code (v1), Lenco bankId (v2) or mobile-money operator
    account: str  # account number, or phone in local form
    country: str


class LencoAdapter(PspAdapter):
    name = NAME

    def __init__(self, config: LencoConfig, *, session: requests.Session | None = None) -> None:
        self._config = config
        self._session = session or http.make_session(connections=config.connections)
        self._timeout = http.timeouts(read=config.timeout, connect=config.connect_timeout)
        self._account_ids: dict[str, str] = {}
        self._account_lock = threading.Lock()

    # --- interface -------------------------------------------------------------------------------

    def supports(self, *, currency: str, institution: str) -> bool:
        if currency.upper() not in self._config.currencies:
            return False
        return not self._config.institutions or institution in self._config.institutions

    def make_reference(self, *, order_key: str, attempt: int) -> str:
        return references.payout_reference(
            order_id=order_key, attempt=attempt, prefix=REFERENCE_PREFIX, max_length=REFERENCE_MAX_LENGTH
        )

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        """POST the transfer (v1 queued ``/transfer`` for NGN, v2 ``/transfers/<rail>`` otherwise).

        Returns the payout as Lenco reports it: PENDING when queued, FAILED (with the mapped reason and
        Lenco's raw text) when Lenco answered 200 with ``status: failed``. A duplicate-reference answer is
        resolved here by reading the payout back; ``DuplicateReference`` only when that read finds nothing.

        Raises PspUnavailable (timeout, connection error, 5xx, 429, non-JSON, errorCode 10, 200 with
        ``status: false``: the outcome is unknown, look up by reference), PspRejected (4xx: no money moved,
        ``reason`` mapped from errorCode or message), DuplicateReference.
        """
        reference = _checked_reference(request.reference)
        currency = request.currency.upper()
        if currency not in self._config.currencies:
            raise PspRejected(
                f"lenco is not configured for {currency}", psp=NAME, reason=FailureReason.UNSUPPORTED
            )
        amount = _two_decimals(request.amount)
        destination = _destination(request.recipient, currency)
        account_id = self._account_id(currency)
        narration = request.narration.strip() or "Payout"
        log_extra = {
            "psp": NAME,
            "reference": reference,
            "currency": currency,
            "amount": str(amount),
            "rail": destination.rail,
            "account": http.mask(destination.account),
        }
        if currency in V1_CURRENCIES:
            url = f"{self._v1}/transfer"
            body: dict[str, object] = {
                "accountId": account_id,
                "amount": format(amount, "f"),  # v1 takes a string
                "narration": narration,
                "reference": reference,
                "accountNumber": destination.account,
                "bankCode": destination.code,
            }
        else:
            body = {"accountId": account_id, "amount": amount, "reference": reference, "narration": narration}
            if destination.rail == "mobile_money":
                url = f"{self._v2}/transfers/mobile-money"
                body |= {
                    "phone": destination.account,
                    "operator": destination.code,
                    "country": destination.country,
                }
            else:
                url = f"{self._v2}/transfers/bank-account"
                body |= {"accountNumber": destination.account, "bankId": destination.code}
                if destination.country in V2_BANK_COUNTRIES:
                    body["country"] = destination.country
        logger.info("lenco.payout.initiate", extra=log_extra)
        try:
            answer = self._send("POST", url, operation="transfer_create", json_body=body)
        except PspUnavailable as exc:
            logger.warning(
                "lenco.payout.outcome_unknown", extra={**log_extra, "http_status": exc.http_status}
            )
            raise

        if answer.status in (200, 201):
            data = _envelope_data(answer, operation="transfer_create")
            result = self._result(reference=reference, currency=currency, data=data)
            logger.info("lenco.payout.accepted", extra={**log_extra, "status": str(result.status)})
            return result
        if answer.status == 400 and _is_duplicate(answer.body, reference):
            logger.warning("lenco.payout.duplicate_reference", extra=log_extra)
            found = self.get_payout(reference=reference, currency=currency)
            if found.status is PayoutStatus.NOT_FOUND:
                raise DuplicateReference(
                    "lenco already has this reference but cannot show it yet; look it up again",
                    psp=NAME,
                    http_status=answer.status,
                    psp_code=http.error_code(answer.body),
                    request_id=answer.request_id,
                )
            logger.info("lenco.payout.duplicate_resolved", extra={**log_extra, "status": str(found.status)})
            return found
        raise self._refusal(answer, operation="transfer_create", log_extra=log_extra)

    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        """Read the payout back by our reference; NOT_FOUND when Lenco has none.

        Raises PspUnavailable (unknown outcome of the read: try later), PspRejected (e.g. a bad token).
        """
        reference = _checked_reference(reference)
        currency = currency.upper()
        if currency in V1_CURRENCIES:
            url = f"{self._v1}/transfer/by-reference/{quote(reference, safe='')}"
        else:
            url = f"{self._v2}/transfers/status/{quote(reference, safe='')}"
        answer = self._send("GET", url, operation="transfer_get")
        if answer.status in (200, 201):
            data = _envelope_data(answer, operation="transfer_get")
            return self._result(reference=reference, currency=currency, data=data)
        if _is_not_found(answer):
            return PayoutResult(reference=reference, status=PayoutStatus.NOT_FOUND, raw=_raw(answer.body))
        raise self._refusal(answer, operation="transfer_get", log_extra={"psp": NAME, "reference": reference})

    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        """The account holder's name. Raises PspRejected(RECIPIENT_INVALID) when Lenco cannot find it.

        Malawian mobile-money numbers cannot be resolved by Lenco: PspRejected(UNSUPPORTED).
        """
        currency = currency.upper()
        destination = _destination(recipient, currency)
        log_extra = {"psp": NAME, "rail": destination.rail, "account": http.mask(destination.account)}
        if currency in V1_CURRENCIES:
            answer = self._send(
                "GET",
                f"{self._v1}/resolve",
                operation="account_resolve",
                params={"accountNumber": destination.account, "bankCode": destination.code},
                sensitive_url=True,
            )
        elif destination.rail == "mobile_money":
            if destination.country not in MOBILE_MONEY_RESOLVE_COUNTRIES:
                raise PspRejected(
                    f"lenco cannot resolve mobile-money numbers for {currency}",
                    psp=NAME,
                    reason=FailureReason.UNSUPPORTED,
                )
            answer = self._send(
                "POST",
                f"{self._v2}/resolve/mobile-money",
                operation="account_resolve",
                json_body={
                    "phone": destination.account,
                    "operator": destination.code,
                    "country": destination.country,
                },
            )
        else:
            body: dict[str, object] = {"accountNumber": destination.account, "bankId": destination.code}
            if destination.country in V2_BANK_COUNTRIES:
                body["country"] = destination.country
            answer = self._send(
                "POST", f"{self._v2}/resolve/bank-account", operation="account_resolve", json_body=body
            )

        if answer.status in (200, 201):
            data = _envelope_data(answer, operation="account_resolve")
            if not isinstance(data, Mapping):
                raise _unreadable(answer, operation="account_resolve")
            identifier = data.get("accountNumber") or data.get("phone") or destination.account
            name = data.get("accountName")
            return AccountName(
                account_identifier=str(identifier), account_name=name if isinstance(name, str) else ""
            )
        if answer.status in (400, 404) and http.error_code(answer.body) not in {"06", "09", "10", "13"}:
            logger.info("lenco.account.not_found", extra={**log_extra, "http_status": answer.status})
            raise PspRejected(
                http.error_message(answer.body) or "account not found",
                psp=NAME,
                reason=FailureReason.RECIPIENT_INVALID,
                http_status=answer.status,
                psp_code=http.error_code(answer.body),
                request_id=answer.request_id,
            )
        raise self._refusal(answer, operation="account_resolve", log_extra=log_extra)

    def get_balances(self) -> list[PspBalanceReading]:
        """The balance of the payout account of each configured currency (v1 accounts for NGN, v2 otherwise).

        v1: ``total`` = currentBalance, ``available`` = availableBalance; v2: ``total`` = ledgerBalance,
        ``available`` = availableBalance (a null one is replaced by the other). A currency without a usable
        account is logged and left out.
        """
        readings: list[PspBalanceReading] = []
        v1_currencies = [c for c in self._config.currencies if c in V1_CURRENCIES]
        v2_currencies = [c for c in self._config.currencies if c not in V1_CURRENCIES]
        versions: tuple[tuple[Literal["v1", "v2"], list[str]], ...] = (
            ("v1", v1_currencies),
            ("v2", v2_currencies),
        )
        for version, currencies in versions:
            if not currencies:
                continue
            accounts = self._list_accounts(version)
            for currency in currencies:
                try:
                    account = self._payout_account(currency, accounts)
                except PspRejected:
                    logger.warning("lenco.balance.no_account", extra={"psp": NAME, "currency": currency})
                    continue
                reading = _balance_reading(account, version=version, currency=currency)
                if reading is None:
                    logger.warning("lenco.balance.unreadable", extra={"psp": NAME, "currency": currency})
                    continue
                readings.append(reading)
        return readings

    def list_banks(self, *, currency: str) -> list[Bank]:
        """Lenco's bank list for ``currency``: v1 ``GET /banks`` for NGN (``code`` = NIP code), v2
        ``GET /banks?country=..`` otherwise (``code`` = Lenco's ``bankId``). Rows without a code or a name are
        logged and left out.

        Raises PspRejected (UNSUPPORTED for a currency Lenco is not configured for, or a refusal),
        PspUnavailable.
        """
        currency = currency.upper()
        country = COUNTRY_BY_CURRENCY.get(currency, "")
        if currency not in self._config.currencies or not country:
            raise PspRejected(
                f"lenco lists no banks for {currency}", psp=NAME, reason=FailureReason.UNSUPPORTED
            )
        if currency in V1_CURRENCIES:
            answer = self._send("GET", f"{self._v1}/banks", operation="banks_list")
        else:
            answer = self._send(
                "GET", f"{self._v2}/banks", operation="banks_list", params={"country": country}
            )
        if answer.status not in (200, 201):
            raise self._refusal(answer, operation="banks_list", log_extra={"psp": NAME, "currency": currency})
        data = _envelope_data(answer, operation="banks_list")
        if not isinstance(data, list):
            raise _unreadable(answer, operation="banks_list")
        banks: list[Bank] = []
        for row in data:
            code = (
                row.get("code" if currency in V1_CURRENCIES else "id") if isinstance(row, Mapping) else None
            )
            name = row.get("name") if isinstance(row, Mapping) else None
            if isinstance(code, int) and not isinstance(code, bool):
                code = str(code)
            if not isinstance(code, str) or not code.strip() or not isinstance(name, str) or not name.strip():
                continue
            row_country = row.get("country") if isinstance(row, Mapping) else None
            banks.append(
                Bank(
                    code=code.strip(),
                    name=name.strip(),
                    country=row_country.lower() if isinstance(row_country, str) and row_country else country,
                )
            )
        if len(banks) != len(data):
            logger.warning(
                "lenco.banks.rows_skipped",
                extra={"psp": NAME, "currency": currency, "skipped": len(data) - len(banks)},
            )
        return banks

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """Verify ``X-Lenco-Signature`` over the raw bytes, then parse the event.

        Raises WebhookSignatureInvalid (missing or wrong signature), PspRejected (signed but not JSON),
        WebhookBodyRefused (signed, but nested too deep, not UTF-8 or holding a lone surrogate).
        ``status`` is a hint for payout events (``transfer.*`` v2, debit ``transaction.*`` v1) and None for
        every other event; the caller re-reads the payout with ``get_payout`` before acting.
        """
        signature = http.header(headers, SIGNATURE_HEADER)
        if signature is None or not signature.strip():
            logger.warning("lenco.webhook.signature_missing", extra={"psp": NAME})
            raise WebhookSignatureInvalid("missing X-Lenco-Signature", psp=NAME)
        expected = webhook_signature(body=body, api_key=self._config.api_key)
        if not hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("utf-8")):
            logger.warning("lenco.webhook.signature_invalid", extra={"psp": NAME})
            raise WebhookSignatureInvalid("X-Lenco-Signature does not match the body", psp=NAME)
        try:
            payload = http.webhook_loads(body, psp=NAME)
        except ValueError:
            raise PspRejected("signed webhook body is not JSON", psp=NAME) from None
        if not isinstance(payload, Mapping):
            raise PspRejected("signed webhook body is not a JSON object", psp=NAME)

        event_type = str(payload.get("event") or "")
        data = payload.get("data")
        data = data if isinstance(data, Mapping) else {}
        data_id, data_status = data.get("id"), data.get("status")
        if data_id:
            dedupe_key = f"{event_type}|{data_id}|{data_status}".encode()
        else:
            dedupe_key = body
        status: PayoutStatus | None = None
        event_type_is_payout = True
        if event_type in _V2_PAYOUT_EVENTS:
            reference = str(data.get("reference") or "")
            status = _V2_STATUS.get(str(data_status).lower())
        elif event_type in _V1_PAYOUT_EVENTS and data.get("type") != "credit":
            reference = str(data.get("clientReference") or "")
            status = _V1_STATUS.get(str(data_status).lower())
        else:  # collections, ledger entries, balance updates...: not about a payout
            reference = str(data.get("reference") or data.get("clientReference") or "")
            event_type_is_payout = False
        if status is None and event_type_is_payout:  # data.status unreadable: the event name says it
            status = PayoutStatus.SUCCEEDED if event_type.endswith(".successful") else PayoutStatus.FAILED
        logger.info(
            "lenco.webhook.received",
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

    @property
    def _v1(self) -> str:
        return self._config.base_url_v1.rstrip("/")

    @property
    def _v2(self) -> str:
        return self._config.base_url_v2.rstrip("/")

    def _send(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        sensitive_url: bool = False,
    ) -> http.HttpAnswer:
        return http.send(
            self._session,
            method,
            url,
            psp=NAME,
            operation=operation,
            timeout=self._timeout,
            headers={"Authorization": f"Bearer {self._config.api_key}"},
            params=params,
            json_body=json_body,
            sensitive_url=sensitive_url,
        )

    def _result(self, *, reference: str, currency: str, data: object) -> PayoutResult:
        if currency in V1_CURRENCIES:
            return _v1_result(reference, data)
        return _v2_result(reference, data)

    def _refusal(
        self, answer: http.HttpAnswer, *, operation: str, log_extra: Mapping[str, object]
    ) -> PspError:
        code = http.error_code(answer.body)
        message = http.error_message(answer.body) or f"HTTP {answer.status}"
        common: dict[str, Any] = {
            "psp": NAME,
            "http_status": answer.status,
            "psp_code": code,
            "request_id": answer.request_id,
        }
        if code == "10" or (200 <= answer.status < 300):
            # "general error": Lenco itself says retry with back-off, then review; the outcome is unknown.
            logger.warning(
                "lenco.call.unknown_outcome", extra={**log_extra, "operation": operation, **common}
            )
            return PspUnavailable(f"lenco {operation}: {message}", **common)
        reason = _ERROR_CODE_REASON.get(code) or failure_reason_from_text(message)
        logger.warning(
            "lenco.call.rejected",
            extra={**log_extra, "operation": operation, **common, "reason": str(reason)},
        )
        return PspRejected(f"lenco {operation}: {message}", reason=reason, **common)

    def _account_id(self, currency: str) -> str:
        if self._config.account_id:
            return self._config.account_id
        with self._account_lock:
            cached = self._account_ids.get(currency)
        if cached:
            return cached
        accounts = self._list_accounts("v1" if currency in V1_CURRENCIES else "v2")
        return str(self._payout_account(currency, accounts)["id"])

    def _payout_account(self, currency: str, accounts: list[Mapping[str, Any]]) -> Mapping[str, Any]:
        """The account paying ``currency`` out of a fresh ``accounts`` list; caches the choice."""
        wanted = self._config.account_id
        if not wanted:
            with self._account_lock:
                wanted = self._account_ids.get(currency, "")
        if wanted:
            for account in accounts:
                if (
                    str(account.get("id")) == wanted
                    and str(account.get("currency") or "").upper() == currency
                ):
                    return account
            if self._config.account_id:
                raise PspRejected(
                    f"the configured lenco account_id is not a {currency} account",
                    psp=NAME,
                    reason=FailureReason.UNSUPPORTED,
                )
        matching = [
            account
            for account in accounts
            if str(account.get("currency") or "").upper() == currency
            and str(account.get("status") or "").lower() == "active"
            and account.get("id")
        ]
        if len(matching) != 1:
            logger.error(
                "lenco.account.ambiguous" if matching else "lenco.account.missing",
                extra={"psp": NAME, "currency": currency, "candidates": len(matching)},
            )
            raise PspRejected(
                f"{len(matching)} active lenco accounts in {currency}; configure account_id",
                psp=NAME,
                reason=FailureReason.UNSUPPORTED,
            )
        account = matching[0]
        with self._account_lock:
            self._account_ids[currency] = str(account["id"])
        return account

    def _list_accounts(self, version: Literal["v1", "v2"]) -> list[Mapping[str, Any]]:
        base = self._v1 if version == "v1" else self._v2
        accounts: list[Mapping[str, Any]] = []
        page = 1
        while True:
            answer = self._send(
                "GET", f"{base}/accounts", operation="accounts_list", params={"page": str(page)}
            )
            if answer.status not in (200, 201):
                raise self._refusal(answer, operation="accounts_list", log_extra={"psp": NAME})
            data = _envelope_data(answer, operation="accounts_list")
            if not isinstance(data, list):
                raise _unreadable(answer, operation="accounts_list")
            accounts.extend(item for item in data if isinstance(item, Mapping))
            meta = answer.body.get("meta") if isinstance(answer.body, Mapping) else None
            page_count = meta.get("pageCount") if isinstance(meta, Mapping) else None
            if not isinstance(page_count, int) or page >= min(page_count, _MAX_ACCOUNT_PAGES):
                return accounts
            page += 1


# --- module helpers ---------------------------------------------------------------------------------


def _checked_reference(reference: str) -> str:
    if not _REFERENCE_RE.fullmatch(reference):
        raise PspRejected(
            "lenco references take only letters, digits, '-', '.' and '_'",
            psp=NAME,
            reason=FailureReason.OTHER,
        )
    return reference


def _two_decimals(amount: Decimal) -> Decimal:
    """The amount with exactly two decimals; refuses (no rounding of money here) what does not fit."""
    try:
        if not amount.is_finite() or amount <= 0:
            raise PspRejected("amount must be a positive number", psp=NAME, reason=FailureReason.OTHER)
        quantized = amount.quantize(_CENT)
    except InvalidOperation:
        raise PspRejected("amount out of range", psp=NAME, reason=FailureReason.OTHER) from None
    if quantized != amount:
        raise PspRejected(
            "lenco takes at most two decimals; quantize the amount first",
            psp=NAME,
            reason=FailureReason.UNSUPPORTED,
        )
    return quantized


def _destination(recipient: Recipient, currency: str) -> _Destination:
    raw = recipient.psp_institution.strip()
    country = COUNTRY_BY_CURRENCY.get(currency, "")
    prefix, separator, rest = raw.partition(":")
    prefix = prefix.strip().lower()
    if separator and prefix == "momo":
        rail: Literal["bank", "mobile_money"] = "mobile_money"
        code = rest.strip().lower()
    elif not separator and raw.lower() in ALL_OPERATORS:
        rail, code = "mobile_money", raw.lower()
    elif separator and prefix == "bank":
        rail, code = "bank", rest.strip()
    elif not separator:
        rail, code = "bank", raw
    else:
        raise PspRejected(
            "psp_institution must be a bank code, 'bank:<id>' or 'momo:<operator>'",
            psp=NAME,
            reason=FailureReason.UNSUPPORTED,
        )
    if rail == "mobile_money":
        if code not in MOBILE_MONEY_OPERATORS.get(country, frozenset()):
            raise PspRejected(
                f"lenco pays no mobile money through {code!r} in {currency}",
                psp=NAME,
                reason=FailureReason.UNSUPPORTED,
            )
        return _Destination(rail, code, _local_phone(recipient.account_identifier, country), country)
    if not code:
        raise PspRejected("recipient has no bank code for lenco", psp=NAME, reason=FailureReason.UNSUPPORTED)
    account = re.sub(r"\s", "", recipient.account_identifier)
    if currency in V1_CURRENCIES and not re.fullmatch(r"[0-9]{10}", account):
        raise PspRejected("a NUBAN has 10 digits", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)
    if not account:
        raise PspRejected("recipient has no account number", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)
    return _Destination(rail, code, account, country)


def _local_phone(raw: str, country: str) -> str:
    """``0XXXXXXXXX`` from a local or international (``+260…``/``260…``) phone number."""
    digits = re.sub(r"[\s\-().]", "", raw).removeprefix("+")
    code = PHONE_COUNTRY_CODE[country]
    if re.fullmatch(rf"{code}[0-9]{{9}}", digits):
        return "0" + digits[len(code) :]
    if re.fullmatch(r"0[0-9]{9}", digits):
        return digits
    if re.fullmatch(r"[1-9][0-9]{8}", digits):
        return "0" + digits
    raise PspRejected("not a valid mobile number", psp=NAME, reason=FailureReason.RECIPIENT_INVALID)


def _envelope_data(answer: http.HttpAnswer, *, operation: str) -> object:
    """``data`` of a 2xx envelope; a 2xx with ``status: false`` or no envelope is an unknown outcome."""
    body = answer.body
    if not isinstance(body, Mapping) or body.get("status") is not True:
        raise _unreadable(answer, operation=operation)
    return body.get("data")


def _unreadable(answer: http.HttpAnswer, *, operation: str) -> PspUnavailable:
    logger.warning(
        "lenco.call.unexpected_answer",
        extra={"psp": NAME, "operation": operation, "http_status": answer.status},
    )
    return PspUnavailable(
        f"lenco {operation}: unexpected answer (HTTP {answer.status})",
        psp=NAME,
        http_status=answer.status,
        psp_code=http.error_code(answer.body),
        request_id=answer.request_id,
    )


def _is_duplicate(body: object, reference: str) -> bool:
    if not isinstance(body, Mapping):
        return False
    if http.error_code(body) == "04" or http.error_message(body).strip().lower() in _DUPLICATE_MESSAGES:
        return True
    errors = body.get("errors")
    detail = errors.get(reference) if isinstance(errors, Mapping) else None
    return isinstance(detail, Mapping) and str(detail.get("errorCode")) == "04"


def _is_not_found(answer: http.HttpAnswer) -> bool:
    if answer.status == 404:
        return True
    return answer.status == 400 and (
        http.error_code(answer.body) == "11" or "not found" in http.error_message(answer.body).lower()
    )


def _raw(value: object) -> Mapping[str, object]:
    return dict(value) if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _v1_result(reference: str, data: object) -> PayoutResult:
    """A v1 ``{request, transaction}`` pair (``/transfer``) or a bare v1 transaction object."""
    if not isinstance(data, Mapping):
        return _unknown(reference, data, why="no transfer object")
    if "request" in data or "transaction" in data:
        request_part = data.get("request")
        request_part = request_part if isinstance(request_part, Mapping) else {}
        transaction = data.get("transaction")
    else:
        request_part, transaction = {}, data
    if isinstance(transaction, Mapping):
        echoed = transaction.get("clientReference") or request_part.get("reference")
        if echoed and echoed != reference:
            return _unknown(reference, data, why="reference mismatch")
        raw_status = str(transaction.get("status") or "").lower()
        status = _V1_STATUS.get(raw_status)
        if status is None:
            return _unknown(reference, data, why=f"status {raw_status!r}")
        reason_text = _text(transaction.get("reasonForFailure"))
        psp_id = (
            _text(transaction.get("nipSessionId"))
            or _text(transaction.get("transactionReference"))
            or _text(transaction.get("id"))
        )
        finished = (
            transaction.get("failedAt") if status is PayoutStatus.FAILED else transaction.get("completedAt")
        )
        return PayoutResult(
            reference=reference,
            status=status,
            psp_transaction_id=psp_id,
            failure_reason=failure_reason_from_text(reason_text) if status is PayoutStatus.FAILED else None,
            failure_message=reason_text if status is PayoutStatus.FAILED else "",
            fee=http.decimal_or_none(transaction.get("fee")),
            amount=http.decimal_or_none(transaction.get("amount")),
            completed_at=http.datetime_or_none(finished)
            or http.datetime_or_none(transaction.get("completedAt")),
            raw=dict(data),
        )
    echoed = request_part.get("reference")
    if echoed and echoed != reference:
        return _unknown(reference, data, why="reference mismatch")
    request_status = str(request_part.get("status") or "").lower()
    if request_status not in _V1_REQUEST_PENDING:
        return _unknown(reference, data, why=f"request status {request_status!r}")
    return PayoutResult(
        reference=reference,
        status=PayoutStatus.PENDING,
        amount=http.decimal_or_none(request_part.get("amount")),
        raw=dict(data),
    )


def _v2_result(reference: str, data: object) -> PayoutResult:
    if not isinstance(data, Mapping):
        return _unknown(reference, data, why="no transfer object")
    echoed = data.get("reference")
    if echoed and echoed != reference:
        return _unknown(reference, data, why="reference mismatch")
    raw_status = str(data.get("status") or "").lower()
    status = _V2_STATUS.get(raw_status)
    if status is None:
        return _unknown(reference, data, why=f"status {raw_status!r}")
    extra = data.get("extraData")
    nip_session = _text(extra.get("nipSessionId")) if isinstance(extra, Mapping) else ""
    reason_text = _text(data.get("reasonForFailure"))
    return PayoutResult(
        reference=reference,
        status=status,
        psp_transaction_id=nip_session or _text(data.get("lencoReference")) or _text(data.get("id")),
        failure_reason=failure_reason_from_text(reason_text) if status is PayoutStatus.FAILED else None,
        failure_message=reason_text if status is PayoutStatus.FAILED else "",
        fee=http.decimal_or_none(data.get("fee")),
        amount=http.decimal_or_none(data.get("amount")),
        completed_at=http.datetime_or_none(data.get("completedAt")),
        raw=dict(data),
    )


def _unknown(reference: str, data: object, *, why: str) -> PayoutResult:
    logger.error("lenco.payout.status_unknown", extra={"psp": NAME, "reference": reference, "why": why})
    return PayoutResult(reference=reference, status=PayoutStatus.UNKNOWN, raw=_raw(data))


def _balance_reading(account: Mapping[str, Any], *, version: str, currency: str) -> PspBalanceReading | None:
    available = http.decimal_or_none(account.get("availableBalance"))
    total = http.decimal_or_none(account.get("currentBalance" if version == "v1" else "ledgerBalance"))
    if available is None:
        available = total
    if total is None:
        total = available
    if total is None or available is None:
        return None
    return PspBalanceReading(currency=currency, total=total, available=available)


def build_adapter() -> LencoAdapter:
    """The Lenco adapter from settings (``LENCO_*``)."""
    return LencoAdapter(
        LencoConfig(
            base_url_v1=settings.LENCO_BASE_URL,
            base_url_v2=settings.LENCO_V2_BASE_URL,
            api_key=settings.LENCO_API_KEY,
            account_id=settings.LENCO_ACCOUNT_ID,
            timeout=settings.LENCO_TIMEOUT_SECONDS,
        )
    )
