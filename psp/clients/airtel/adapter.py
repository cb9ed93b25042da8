"""The Airtel Money adapter: disbursements to Airtel wallets, read back by our ``transaction.id``."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

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
    PspError,
    PspRejected,
    PspUnavailable,
    Recipient,
    WebhookNotice,
    WebhookSignatureInvalid,
)
from psp.clients import http
from psp.clients.airtel import codes, crypto
from psp.clients.airtel.countries import NAME, CountryConfig

logger = logging.getLogger(__name__)

REFERENCE_PREFIX = "pn-"
REFERENCE_MAX_LENGTH = 40
CALLBACK_HASH_HEADERS = ("hash", "x-hash", "x-callback-hash")
_REFERENCE_RE = re.compile(r"[A-Za-z0-9]{4,64}")
_TOKEN_PATH = "/auth/oauth2/token"  # noqa: S105 - a path, not a password
_KEYS_PATH = "/v1/rsa/encryption-keys"
_DISBURSEMENT_PATHS = {
    "v1": "/standard/v1/disbursements/",
    "v2": "/standard/v2/disbursements/",
    "v3": "/standard/v3/disbursements",
}
_KYC_PATH = "/standard/v1/users/"
_BALANCE_PATHS = {"v1": "/standard/v1/users/balance", "v2": "/standard/v2/users/balance"}
_DEFAULT_TOKEN_LIFETIME = 180.0  # seconds; Airtel's documented "expires_in"
_TOKEN_REFRESH_MARGIN = 30.0  # refresh this long (at most half the lifetime) before the token expires
_STATUS_HINTS = {
    "TS": PayoutStatus.SUCCEEDED,
    "TF": PayoutStatus.FAILED,
    "TIP": PayoutStatus.PENDING,
    "TA": PayoutStatus.PENDING,
}
_KYC_NOT_FOUND_TEXTS = (
    "not found",
    "invalid msisdn",
    "not registered",
    "does not exist",
    "no such",
    "unknown",
)

KeyUse = Literal["pin", "signing"]


@dataclass(frozen=True)
class AirtelConfig:
    client_id: str
    client_secret: str = field(repr=False)
    countries: tuple[CountryConfig, ...]
    callback_secret: str = field(default="", repr=False)  # empty: callbacks are not authenticated
    timeout: Decimal | float = Decimal("20")  # read timeout, seconds
    connect_timeout: Decimal | float = Decimal("5")

    def __post_init__(self) -> None:
        if not self.countries:
            raise ValueError("airtel: no country configured")
        currencies = [country.currency for country in self.countries]
        shared = sorted({currency for currency in currencies if currencies.count(currency) > 1})
        if shared:
            # A read by reference carries only the currency: it must name one country.
            raise ValueError(f"airtel: two enabled countries pay in {', '.join(shared)}")


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float


class AirtelAdapter(PspAdapter):
    name = NAME

    def __init__(
        self,
        config: AirtelConfig,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._session = session or http.make_session()
        self._timeout = http.timeouts(read=config.timeout, connect=config.connect_timeout)
        self._clock = clock
        self._by_currency = {country.currency: country for country in config.countries}
        self._tokens: dict[str, _Token] = {}  # per host: the pan-African one or a country's own
        self._token_lock = threading.Lock()
        self._keys: dict[tuple[str, KeyUse], rsa.RSAPublicKey] = {}
        self._pins: dict[str, str] = {}  # country -> encrypted PIN (encrypted once, then reused)
        self._secrets_lock = threading.Lock()

    @property
    def config(self) -> AirtelConfig:
        return self._config

    # --- interface -------------------------------------------------------------------------------

    def supports(self, *, currency: str, institution: str) -> bool:
        country = self._by_currency.get(currency.upper())
        return country is not None and country.serves(institution)

    def make_reference(self, *, order_key: str, attempt: int) -> str:
        """``pn`` + the order's 32 hex digits (or ``h`` + 26 of its SHA-256) + the attempt, letters and
        digits only: ``psp.references`` without its dashes. Still injective (the hex part has a fixed
        width) and valid whatever Airtel's UNCONFIRMED charset for ``transaction.id`` is."""
        reference = references.payout_reference(
            order_id=order_key, attempt=attempt, prefix=REFERENCE_PREFIX, max_length=REFERENCE_MAX_LENGTH
        )
        return reference.replace("-", "")

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        """POST /standard/<version>/disbursements with ``transaction.id`` = our reference.

        Returns SUCCEEDED (``TS`` + ``DP00900001001``) or PENDING (in process). A duplicate-id answer
        (``DP00900001011``, ``DP00900001017``, ``ESB000041``) returns what the enquiry by that id shows, or
        raises DuplicateReference when the enquiry does not show it yet.

        Raises PspUnavailable (timeout, 5xx, 408, 429, ambiguous or unknown code, contradictions: the
        outcome is unknown, read by reference), PspRejected (a refusal code, or a 4xx with no Airtel code:
        no money moved; also before sending, for a number, amount or key this adapter cannot use),
        DuplicateReference.
        """
        reference = _checked_reference(request.reference)
        country = self._country(request.currency, institution=request.recipient.institution)
        msisdn = country.msisdn(request.recipient.account_identifier)
        amount = country.wire_amount(request.amount)
        payee: dict[str, object] = {"msisdn": msisdn}
        transaction: dict[str, object] = {"amount": amount, "id": reference}
        if country.version != "v1":
            payee["currency"] = country.currency
            transaction["type"] = "B2C"
        if country.version == "v3":
            payee["wallet_type"] = "NORMAL"
        log_extra = {
            "psp": NAME,
            "reference": reference,
            "country": country.country,
            "currency": country.currency,
            "amount": str(amount),
            "account": http.mask(msisdn),
        }
        body = {
            "payee": payee,
            # "Reference for service / goods purchased", alphanumeric 4-64: cosmetic, ours again.
            "reference": reference,
            "pin": self._encrypted_pin(country),
            "transaction": transaction,
        }
        logger.info("airtel.payout.initiate", extra=log_extra)
        try:
            answer = self._call(
                country,
                "POST",
                _DISBURSEMENT_PATHS[country.version],
                operation="disbursement_create",
                json_body=body,
            )
        except PspUnavailable as exc:
            logger.warning(
                "airtel.payout.outcome_unknown",
                extra={**log_extra, "http_status": exc.http_status, "psp_code": exc.psp_code},
            )
            raise
        answer_envelope = codes.envelope(answer.body)
        outcome = codes.classify_send(answer_envelope, http_status=answer.status)
        echoed = answer_envelope.transaction.get("id")
        if echoed not in (None, "") and str(echoed) != reference:
            logger.error("airtel.payout.id_mismatch", extra=log_extra)
            outcome = codes.SendOutcome.UNKNOWN
        if outcome is codes.SendOutcome.SUCCEEDED or outcome is codes.SendOutcome.PENDING:
            status = (
                PayoutStatus.SUCCEEDED if outcome is codes.SendOutcome.SUCCEEDED else PayoutStatus.PENDING
            )
            logger.info("airtel.payout.accepted", extra={**log_extra, "status": str(status)})
            return PayoutResult(
                reference=reference,
                status=status,
                psp_transaction_id=_airtel_id(answer_envelope.transaction),
                amount=request.amount,
                raw=_raw(answer.body),
            )
        if outcome is codes.SendOutcome.DUPLICATE:
            logger.warning(
                "airtel.payout.duplicate_id", extra={**log_extra, "psp_code": answer_envelope.code}
            )
            duplicate = DuplicateReference(
                "airtel already has this transaction.id but its enquiry does not show it",
                psp=NAME,
                http_status=answer.status,
                psp_code=answer_envelope.code,
                request_id=answer.request_id,
            )
            try:
                found = self.get_payout(reference=reference, currency=request.currency)
            except PspError as exc:
                # Airtel has the payout: a failed enquiry must never surface as a refusal of the send.
                raise duplicate from exc
            if found.status is PayoutStatus.NOT_FOUND:
                raise duplicate
            logger.info("airtel.payout.duplicate_resolved", extra={**log_extra, "status": str(found.status)})
            return found
        if outcome is codes.SendOutcome.REFUSED and _is_pin_refusal(answer_envelope):
            self._forget_pin(country)  # a new key or PIN may have been set: encrypt again next time
        raise _error(
            answer,
            answer_envelope,
            operation="disbursement_create",
            log_extra=log_extra,
            refused=outcome is codes.SendOutcome.REFUSED,
        )

    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        """Transaction enquiry by our id (v1 path for v1 countries, else the v2 path with
        ``transactionType=B2C``: the v3 enquiry path is UNCONFIRMED). NOT_FOUND on ``DP00900001015`` /
        ``ESB000045``. ``TS`` succeeded, ``TF`` failed, ``TIP``/``TA`` pending; any other status (``TE``
        included, documented for collections only) is UNKNOWN and logged.

        Raises PspUnavailable (no or an unreadable answer, an ambiguous or unknown code), PspRejected.
        """
        reference = _checked_reference(reference)
        country = self._country(currency)
        if country.version == "v1":
            path, params = f"/standard/v1/disbursements/{reference}", None
        else:
            path, params = f"/standard/v2/disbursements/{reference}", {"transactionType": "B2C"}
        answer = self._call(country, "GET", path, operation="disbursement_get", params=params)
        answer_envelope = codes.envelope(answer.body)
        log_extra = {"psp": NAME, "reference": reference, "country": country.country}
        status = answer_envelope.transaction_status
        if status:
            transaction = answer_envelope.transaction
            echoed = transaction.get("id")
            if echoed not in (None, "") and str(echoed) != reference:
                logger.error("airtel.payout.id_mismatch", extra=log_extra)
                return PayoutResult(reference=reference, status=PayoutStatus.UNKNOWN, raw=_raw(answer.body))
            psp_id = _airtel_id(transaction)
            if status == "TS":
                return PayoutResult(
                    reference=reference,
                    status=PayoutStatus.SUCCEEDED,
                    psp_transaction_id=psp_id,
                    raw=_raw(answer.body),
                )
            if status == "TF":
                message = codes.as_text(transaction.get("message")) or answer_envelope.message
                return PayoutResult(
                    reference=reference,
                    status=PayoutStatus.FAILED,
                    psp_transaction_id=psp_id,
                    failure_reason=codes.reason_for(answer_envelope.code, message),
                    failure_message=message,
                    raw=_raw(answer.body),
                )
            if status in ("TIP", "TA"):
                return PayoutResult(
                    reference=reference,
                    status=PayoutStatus.PENDING,
                    psp_transaction_id=psp_id,
                    raw=_raw(answer.body),
                )
            logger.error("airtel.payout.status_unknown", extra={**log_extra, "status": status})
            return PayoutResult(reference=reference, status=PayoutStatus.UNKNOWN, raw=_raw(answer.body))
        code = answer_envelope.code
        if code in codes.NOT_FOUND:
            return PayoutResult(reference=reference, status=PayoutStatus.NOT_FOUND, raw=_raw(answer.body))
        if code == "DP00900001000" or code in codes.IN_PROCESS:
            # "still processing" about our id, without a transaction object: Airtel has it.
            return PayoutResult(reference=reference, status=PayoutStatus.PENDING, raw=_raw(answer.body))
        raise _error(
            answer,
            answer_envelope,
            operation="disbursement_get",
            log_extra=log_extra,
            refused=code in codes.REFUSED or (not answer_envelope.codes and 400 <= answer.status < 500),
        )

    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        """KYC: ``GET /standard/v1/users/{msisdn}`` -> ``first_name`` + ``last_name`` (or the other
        lookup's ``user_name``). Raises PspRejected(RECIPIENT_INVALID) for a barred wallet, a number that is
        not an Airtel Money user, or a not-found answer (HTTP 404, or a failure whose text says so: the
        not-found shape is UNCONFIRMED); PspRejected(OTHER) for a 4xx with no Airtel code (e.g. the KYC
        product not approved: the name check is then skipped); PspUnavailable otherwise."""
        country = self._country(currency, institution=recipient.institution)
        msisdn = country.msisdn(recipient.account_identifier)
        log_extra = {"psp": NAME, "country": country.country, "account": http.mask(msisdn)}
        answer = self._call(country, "GET", f"{_KYC_PATH}{msisdn}", operation="kyc_get", sensitive_url=True)
        answer_envelope = codes.envelope(answer.body)
        data = answer_envelope.data
        if answer.status == 200 and answer_envelope.success is not False and data:
            if (
                codes.as_flag(data.get("is_barred")) is True
                or codes.as_flag(data.get("is_airtel_money_user")) is False
            ):
                logger.info("airtel.account.not_payable", extra=log_extra)
                raise PspRejected(
                    "the Airtel wallet is barred or not an Airtel Money user",
                    psp=NAME,
                    reason=FailureReason.RECIPIENT_INVALID,
                    psp_code=answer_envelope.code,
                )
            return AccountName(
                account_identifier=msisdn, account_name=_holder_name(data)
            )  # "": check skipped
        message = answer_envelope.message.lower()
        if answer.status == 404 or (
            answer_envelope.success is False and any(text in message for text in _KYC_NOT_FOUND_TEXTS)
        ):
            logger.info("airtel.account.not_found", extra={**log_extra, "http_status": answer.status})
            raise PspRejected(
                "Airtel has no wallet for this number",
                psp=NAME,
                reason=FailureReason.RECIPIENT_INVALID,
                http_status=answer.status,
                psp_code=answer_envelope.code,
                request_id=answer.request_id,
            )
        raise _error(
            answer,
            answer_envelope,
            operation="kyc_get",
            log_extra=log_extra,
            refused=not answer_envelope.codes and 400 <= answer.status < 500,
        )

    def get_balances(self) -> list[PspBalanceReading]:
        """The disbursement wallet's balance per enabled country (``AIRTEL_BALANCE``: v1
        ``/standard/v1/users/balance``, v2 ``?type=DISB``, or ``off`` where the disbursement wallet has no
        balance API: that country is left out). Raises PspUnavailable, PspRejected."""
        readings: list[PspBalanceReading] = []
        for country in self._config.countries:
            if country.balance == "off":
                continue
            params = {"type": "DISB"} if country.balance == "v2" else None
            answer = self._call(
                country, "GET", _BALANCE_PATHS[country.balance], operation="balance_get", params=params
            )
            answer_envelope = codes.envelope(answer.body)
            balance = http.decimal_or_none(answer_envelope.data.get("balance"))
            currency = codes.as_text(answer_envelope.data.get("currency")).upper() or country.currency
            if answer.status != 200 or answer_envelope.success is False or balance is None:
                raise _error(
                    answer,
                    answer_envelope,
                    operation="balance_get",
                    log_extra={"psp": NAME, "country": country.country},
                    refused=not answer_envelope.codes and 400 <= answer.status < 500,
                )
            if currency != country.currency:
                raise _unreadable(answer, operation="balance_get")
            readings.append(PspBalanceReading(currency=currency, total=balance, available=balance))
        return readings

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """An Airtel callback (``{"transaction": {"id", "status_code", "airtel_money_id", "message"},
        "hash"}``) as a notice that makes the transfer due for an enquiry, never more.

        With ``callback_secret`` set (callback authentication enabled in Airtel's portal) the HMAC-SHA256
        ``hash`` (a body field, or a ``hash`` header: Airtel's samples and one transcription disagree) must
        match one of the texts Airtel may have hashed (``crypto.callback_hash_messages``: the canonical
        string is UNCONFIRMED); otherwise WebhookSignatureInvalid (stored, never acted on; polling still
        settles the payout). Without a secret the callback is an unauthenticated hint, like MTN's: it only
        triggers a read by reference. ``event_id`` is the SHA-256 of id, status and Airtel's id.
        """
        secret = self._config.callback_secret
        try:
            payload = http.loads(body)
        except ValueError:
            payload = None
        transaction = payload.get("transaction") if isinstance(payload, Mapping) else None
        if not isinstance(payload, Mapping) or not isinstance(transaction, Mapping):
            if secret:
                raise WebhookSignatureInvalid("airtel callback without a transaction object", psp=NAME)
            raise PspRejected(
                "not an Airtel transaction callback", psp=NAME, reason=FailureReason.UNSUPPORTED
            )
        if secret:
            body_hash = payload.get("hash")
            given = body_hash if isinstance(body_hash, str) else ""
            if not given:
                given = next(
                    (value for name in CALLBACK_HASH_HEADERS if (value := http.header(headers, name))), ""
                )
            messages = crypto.callback_hash_messages(body, payload, hash_in_body=isinstance(body_hash, str))
            if not given or not crypto.callback_hash_matches(given, messages, secret=secret):
                logger.warning("airtel.webhook.hash_mismatch", extra={"psp": NAME, "hash_given": bool(given)})
                raise WebhookSignatureInvalid("airtel callback hash does not match", psp=NAME)
        reference = codes.as_text(transaction.get("id"))
        if not reference:
            raise PspRejected("airtel callback without transaction.id", psp=NAME, reason=FailureReason.OTHER)
        raw_status = codes.as_text(transaction.get("status_code") or transaction.get("status")).upper()
        airtel_id = codes.as_text(transaction.get("airtel_money_id"))
        event_type = f"disbursement.{raw_status.lower()}" if raw_status else "disbursement.callback"
        logger.info(
            "airtel.webhook.received",
            extra={
                "psp": NAME,
                "reference": reference,
                "event_type": event_type,
                "authenticated": bool(secret),
            },
        )
        return WebhookNotice(
            event_id=hashlib.sha256(f"{reference}|{raw_status}|{airtel_id}".encode()).hexdigest(),
            event_type=event_type,
            reference=reference,
            status=_STATUS_HINTS.get(raw_status),
            payload=dict(payload),
        )

    # --- helpers ---------------------------------------------------------------------------------

    def _country(self, currency: str, *, institution: str | None = None) -> CountryConfig:
        country = self._by_currency.get(currency.upper())
        if country is None or (institution is not None and not country.serves(institution)):
            raise PspRejected(
                f"airtel is not configured to pay {institution or 'this institution'} in {currency}",
                psp=NAME,
                reason=FailureReason.UNSUPPORTED,
            )
        return country

    def _call(
        self,
        country: CountryConfig,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: object = None,
        params: Mapping[str, str] | None = None,
        sensitive_url: bool = False,
    ) -> http.HttpAnswer:
        """One product call for ``country``: bearer token, ``X-Country``/``X-Currency``, the body signed
        where the country has message signing; on ``invalid_token`` a new token and one repeat (the repeat
        of a POST carries the same ``transaction.id``, so it cannot pay twice)."""
        for attempt in (1, 2):
            token = self._access_token(country.base_url)
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "*/*",
                "X-Country": country.country,
                "X-Currency": country.currency,
            }
            raw_json: bytes | None = None
            if json_body is not None:
                raw_json = http.dumps(json_body).encode("utf-8")  # signed and sent byte for byte
                if country.signing != "off":
                    key = self._public_key(country, "signing")
                    headers |= crypto.sign_body(raw_json, public_key=key, padding_name=country.signing)
            answer = http.send(
                self._session,
                method,
                country.base_url + path,
                psp=NAME,
                operation=operation,
                timeout=self._timeout,
                headers=headers,
                params=params,
                raw_json=raw_json,
                sensitive_url=sensitive_url,
            )
            if answer.status in (401, 403) and codes.is_invalid_token(answer.body) and attempt == 1:
                logger.info("airtel.token.rejected", extra={"psp": NAME, "operation": operation})
                self._forget_token(country.base_url, token)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _access_token(self, base_url: str) -> str:
        """The host's token, fetched again ``_TOKEN_REFRESH_MARGIN`` before its 180 s run out."""
        with self._token_lock:
            now = self._clock()
            token = self._tokens.get(base_url)
            if token is not None and now < token.refresh_at:
                return token.value
            answer = http.send(
                self._session,
                "POST",
                base_url + _TOKEN_PATH,
                psp=NAME,
                operation="token_create",
                timeout=self._timeout,
                headers={"Accept": "*/*"},
                json_body={
                    "client_id": self._config.client_id,
                    "client_secret": self._config.client_secret,
                    "grant_type": "client_credentials",
                },
            )
            body = answer.body if isinstance(answer.body, Mapping) else {}
            value = body.get("access_token")
            if answer.status != 200 or not isinstance(value, str) or not value:
                if 400 <= answer.status < 500:
                    logger.error("airtel.token.refused", extra={"psp": NAME, "http_status": answer.status})
                    raise PspRejected(
                        f"airtel token refused: {codes.as_text(body.get('error')) or answer.status}",
                        psp=NAME,
                        http_status=answer.status,
                        request_id=answer.request_id,
                    )
                raise _unreadable(answer, operation="token_create")
            expires_in = http.decimal_or_none(body.get("expires_in"))  # "180" in the docs, 180 in mocks
            lifetime = (
                float(expires_in) if expires_in is not None and expires_in > 0 else _DEFAULT_TOKEN_LIFETIME
            )
            margin = min(_TOKEN_REFRESH_MARGIN, lifetime / 2)
            self._tokens[base_url] = _Token(value=value, refresh_at=now + lifetime - margin)
            logger.info("airtel.token.created", extra={"psp": NAME, "expires_in": lifetime})
            return value

    def _forget_token(self, base_url: str, value: str) -> None:
        with self._token_lock:
            token = self._tokens.get(base_url)
            if token is not None and token.value == value:
                del self._tokens[base_url]

    def _public_key(self, country: CountryConfig, use: KeyUse) -> rsa.RSAPublicKey:
        """Airtel's RSA key for the PIN or for signing: from settings, else ``GET /v1/rsa/encryption-keys``
        (fetched once per process and country; dropped when Airtel refuses the encrypted PIN)."""
        with self._secrets_lock:
            cached = self._keys.get((country.country, use))
        if cached is not None:
            return cached
        configured = country.pin_public_key if use == "pin" else country.signing_public_key
        text = configured or self._fetch_public_key(country)
        try:
            key = crypto.load_public_key(text)
        except ValueError as exc:
            logger.error(
                "airtel.key.unusable",
                extra={"psp": NAME, "country": country.country, "use": use, "configured": bool(configured)},
            )
            raise PspRejected(
                f"airtel {use} key for {country.country} is not an RSA public key ({exc})",
                psp=NAME,
                reason=FailureReason.OTHER,
            ) from None
        with self._secrets_lock:
            self._keys[(country.country, use)] = key
        return key

    def _fetch_public_key(self, country: CountryConfig) -> str:
        answer = self._call(country, "GET", _KEYS_PATH, operation="encryption_key_get")
        answer_envelope = codes.envelope(answer.body)
        key = codes.as_text(answer_envelope.data.get("key"))
        if answer.status != 200 or not key:
            raise _error(
                answer,
                answer_envelope,
                operation="encryption_key_get",
                log_extra={"psp": NAME, "country": country.country},
                refused=400 <= answer.status < 500,
            )
        return key

    def _encrypted_pin(self, country: CountryConfig) -> str:
        with self._secrets_lock:
            cached = self._pins.get(country.country)
        if cached is not None:
            return cached
        key = self._public_key(country, "pin")
        encrypted = crypto.rsa_encrypt(key, country.pin.encode("ascii"), country.pin_padding)
        with self._secrets_lock:
            return self._pins.setdefault(country.country, encrypted)

    def _forget_pin(self, country: CountryConfig) -> None:
        with self._secrets_lock:
            self._pins.pop(country.country, None)
            self._keys.pop((country.country, "pin"), None)
        logger.error("airtel.pin.refused", extra={"psp": NAME, "country": country.country})


# --- module helpers ---------------------------------------------------------------------------------


def _checked_reference(reference: str) -> str:
    if not _REFERENCE_RE.fullmatch(reference):
        raise PspRejected(
            "an airtel transaction.id takes 4 to 64 letters and digits", psp=NAME, reason=FailureReason.OTHER
        )
    return reference


def _raw(value: object) -> Mapping[str, object]:
    return dict(value) if isinstance(value, Mapping) else {}


def _airtel_id(transaction: Mapping[str, Any]) -> str:
    """Airtel's own id of the transaction (``airtel_money_id``, else the ``reference_id`` TID)."""
    return codes.as_text(transaction.get("airtel_money_id")) or codes.as_text(transaction.get("reference_id"))


def _holder_name(data: Mapping[str, Any]) -> str:
    parts = [codes.as_text(data.get("first_name")), codes.as_text(data.get("last_name"))]
    name = " ".join(part for part in parts if part)
    return name or codes.as_text(data.get("user_name")) or codes.as_text(data.get("name"))


def _is_pin_refusal(answer: codes.Envelope) -> bool:
    return any(code in codes.PIN_REFUSALS for code in answer.codes) or "pin" in answer.message.lower()


def _unreadable(answer: http.HttpAnswer, *, operation: str) -> PspUnavailable:
    logger.warning(
        "airtel.call.unexpected_answer",
        extra={"psp": NAME, "operation": operation, "http_status": answer.status},
    )
    return PspUnavailable(
        f"airtel {operation}: unexpected answer (HTTP {answer.status})",
        psp=NAME,
        http_status=answer.status,
        request_id=answer.request_id,
    )


def _error(
    answer: http.HttpAnswer,
    answer_envelope: codes.Envelope,
    *,
    operation: str,
    log_extra: Mapping[str, object],
    refused: bool,
) -> PspError:
    """The exception for an answer that is not a result: PspRejected when ``refused`` (a refusal code, or a
    plain gateway 4xx), else PspUnavailable (ambiguous, unknown code, contradiction, no envelope)."""
    code = answer_envelope.code
    message = answer_envelope.message or f"HTTP {answer.status}"
    common: dict[str, Any] = {
        "psp": NAME,
        "http_status": answer.status,
        "psp_code": code,
        "request_id": answer.request_id,
    }
    extra = {**log_extra, "operation": operation, "http_status": answer.status, "psp_code": code}
    if not refused:
        if code and code not in codes.KNOWN:
            logger.error("airtel.call.unknown_code", extra=extra)  # alert: a code this adapter has never seen
        else:
            logger.warning("airtel.call.unknown_outcome", extra=extra)
        return PspUnavailable(f"airtel {operation}: {code or 'no code'} {message}".strip(), **common)
    reason = codes.reason_for(code, message)
    if code in codes.OUR_SETUP:
        logger.error("airtel.call.setup_refused", extra={**extra, "reason": str(reason)})
    else:
        logger.warning("airtel.call.rejected", extra={**extra, "reason": str(reason)})
    return PspRejected(f"airtel {operation}: {code} {message}".strip(), reason=reason, **common)
