"""The M-Pesa Daraja B2C adapter: the payment request, reads and balance by query and callback, the shared
token (see the package's docstring for the design)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import requests
from django.utils import timezone

from psp import daraja, references
from psp.base import (
    AccountName,
    AmountRefusal,
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
from psp.clients.mpesa import answers, wire
from psp.clients.mpesa.wire import NAME
from psp.models import DarajaAnswer, DarajaRequest, DarajaRequestKind, DarajaSend

logger = logging.getLogger(__name__)

_REFRESH_MARGIN = timedelta(seconds=120)
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class CallbackRecord:
    """What recording a callback did: the payout reference whose transfer is now due for a read ("" for
    none), and a short outcome for the webhook event row."""

    reference: str
    outcome: str


@dataclass(frozen=True)
class MpesaConfig:
    base_url: str
    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    shortcode: str
    initiator_name: str
    security_credential: str = field(repr=False)  # base64 RSA ciphertext of the initiator password
    callback_base_url: str  # the node's public base URL, e.g. https://node.example.com
    callback_token: str = field(repr=False)
    timeout: Decimal | float = Decimal("15")  # read timeout, seconds
    connect_timeout: Decimal | float = Decimal("5")
    min_amount: Decimal = Decimal("10")
    max_amount: Decimal = Decimal("250000")
    balance_wait: Decimal | float = Decimal("10")  # seconds get_balances waits for the balance callback


class MpesaAdapter(PspAdapter):
    name = NAME

    def __init__(
        self,
        config: MpesaConfig,
        *,
        store: daraja.DarajaStore | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._store = store or daraja.DarajaStore(
            app=daraja.app_id(base_url=config.base_url, consumer_key=config.consumer_key)
        )
        self._session = session or http.make_session()
        self._timeout = http.timeouts(read=config.timeout, connect=config.connect_timeout)
        self._token_lease = timedelta(seconds=float(config.timeout) + float(config.connect_timeout) + 1)
        self._sleep = sleep
        # UNCONFIRMED whether a status query by OriginalConversationID may omit TransactionID or must send
        # it empty: the first query omits it; a refusal that names TransactionID switches this process to
        # sending it empty (and that query is repeated at once).
        self._empty_transaction_id = False

    # --- interface -------------------------------------------------------------------------------

    def supports(self, *, currency: str, institution: str) -> bool:
        return currency.upper() == wire.CURRENCY and institution in wire.INSTITUTIONS

    def amount_refusal(self, *, currency: str, amount: Decimal) -> AmountRefusal | None:
        if amount < self._config.min_amount:
            return AmountRefusal.BELOW_MINIMUM
        if amount > self._config.max_amount:
            return AmountRefusal.ABOVE_MAXIMUM
        if amount != amount.to_integral_value():
            return AmountRefusal.UNPAYABLE
        return None

    def make_reference(self, *, order_key: str, attempt: int) -> str:
        return references.payout_reference(
            order_id=order_key,
            attempt=attempt,
            prefix=wire.REFERENCE_PREFIX,
            max_length=wire.REFERENCE_MAX_LENGTH,
        )

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        """POST /mpesa/b2c/v3/paymentrequest with ``OriginatorConversationID`` = our reference.

        ``ResponseCode`` 0 -> PENDING (accepted for processing; the outcome comes by callback and is read
        with ``get_payout``). Raises PspRejected (a refusal before anything was queued: a gateway 4xx, a
        non-zero ResponseCode, an amount or MSISDN M-Pesa cannot take), DuplicateReference (Daraja has
        this OriginatorConversationID already), PspUnavailable (timeout, 5xx, throttling, an unreadable
        answer: the outcome is unknown, look it up).
        """
        reference = wire.checked_reference(request.reference)
        if request.currency.upper() != wire.CURRENCY:
            raise PspRejected(
                f"M-Pesa pays KES only, not {request.currency}",
                psp=NAME,
                reason=FailureReason.UNSUPPORTED,
            )
        refusal = self.amount_refusal(currency=request.currency, amount=request.amount)
        if refusal is not None:
            raise PspRejected(
                f"M-Pesa cannot pay KES {request.amount}: {refusal}",
                psp=NAME,
                reason=FailureReason.OTHER
                if refusal == AmountRefusal.UNPAYABLE
                else FailureReason.LIMIT_EXCEEDED,
            )
        msisdn = wire.msisdn_of(request.recipient.account_identifier)
        body = {
            "OriginatorConversationID": reference,
            "InitiatorName": self._config.initiator_name,
            "SecurityCredential": self._config.security_credential,
            "CommandID": wire.COMMAND_ID,
            "Amount": str(int(request.amount)),
            "PartyA": self._config.shortcode,
            "PartyB": msisdn,
            "Remarks": wire.remarks(request.narration, default="Payout"),
            "QueueTimeOutURL": self.callback_url(wire.CallbackKind.PAYMENT_TIMEOUT, reference),
            "ResultURL": self.callback_url(wire.CallbackKind.PAYMENT, reference),
        }
        log_extra = {
            "psp": NAME,
            "reference": reference,
            "amount": str(request.amount),
            "account": http.mask(msisdn),
        }
        key = self._store.request_sent(
            kind=DarajaRequestKind.PAYMENT, reference=reference, amount=request.amount
        )
        logger.info("mpesa.payout.initiate", extra=log_extra)
        try:
            answer = self._call(wire.B2C_PATH, operation="b2c_payment", json_body=body)
        except PspUnavailable as exc:
            if wire.is_duplicate(exc.psp_code, exc.message):
                self._store.request_answered_http(key=key, send=DarajaSend.DUPLICATE)
                logger.warning("mpesa.payout.duplicate_reference", extra=log_extra)
                self._look_up_after_duplicate(reference)
                raise DuplicateReference(
                    "Daraja already has this OriginatorConversationID; look it up",
                    psp=NAME,
                    http_status=exc.http_status,
                    psp_code=exc.psp_code,
                    request_id=exc.request_id,
                ) from None
            logger.warning(
                "mpesa.payout.outcome_unknown",
                extra={**log_extra, "http_status": exc.http_status, "psp_code": exc.psp_code},
            )
            raise
        ack = wire.acknowledgement(answer)
        if ack is not None:
            code, conversation_id, description = ack
            if wire.is_zero(code):
                self._store.request_answered_http(
                    key=key, send=DarajaSend.ACCEPTED, conversation_id=conversation_id
                )
                logger.info("mpesa.payout.accepted", extra={**log_extra, "conversation_id": conversation_id})
                return PayoutResult(
                    reference=reference,
                    status=PayoutStatus.PENDING,
                    amount=request.amount,
                    raw={"ConversationID": conversation_id, "ResponseCode": code},
                )
            self._store.request_answered_http(key=key, send=DarajaSend.REFUSED)
            logger.warning("mpesa.payout.refused", extra={**log_extra, "response_code": code})
            raise PspRejected(
                f"mpesa b2c_payment: ResponseCode {code} {description}".strip(),
                psp=NAME,
                reason=wire.RESULT_REASONS.get(code, FailureReason.OTHER),
                http_status=answer.status,
                psp_code=code,
                request_id=answer.request_id,
            )
        if wire.is_duplicate(http.error_code(answer.body), http.error_message(answer.body)):
            self._store.request_answered_http(key=key, send=DarajaSend.DUPLICATE)
            logger.warning("mpesa.payout.duplicate_reference", extra=log_extra)
            self._look_up_after_duplicate(reference)
            raise DuplicateReference(
                "Daraja already has this OriginatorConversationID; look it up",
                psp=NAME,
                http_status=answer.status,
                psp_code=wire.DUPLICATE_CODE,
                request_id=answer.request_id,
            )
        error = wire.refusal(answer, operation="b2c_payment")
        if isinstance(error, PspRejected):
            self._store.request_answered_http(key=key, send=DarajaSend.REFUSED)
        logger.warning(
            "mpesa.payout.not_accepted",
            extra={**log_extra, "http_status": answer.status, "psp_code": error.psp_code},
        )
        raise error

    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        """What Safaricom last said about ``reference`` (a Transaction Status result), asking again when
        no answer is fresh. Never FAILED or NOT_FOUND without Safaricom's answer saying so.

        Raises PspUnavailable (nothing known yet: no accepted send and no answer; or the query could not
        be sent), PspRejected (the query was refused).
        """
        reference = wire.checked_reference(reference)
        rows = self._store.history(reference=reference)
        payments = [row for row in rows if row.kind == DarajaRequestKind.PAYMENT]
        queries = [row for row in rows if row.kind == DarajaRequestKind.STATUS]
        finals = [row for row in queries if row.answer in (DarajaAnswer.SUCCEEDED, DarajaAnswer.FAILED)]
        if finals:
            return answers.final_result(reference, finals, payments)
        if self._query_due(queries, payments):
            self._query_status(reference)
        return answers.interim_result(reference, queries, payments)

    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        """B2C has no look-up of the holder before paying (protocol section 10)."""
        raise PspRejected(
            "M-Pesa B2C has no account name look-up", psp=NAME, reason=FailureReason.UNSUPPORTED
        )

    def get_balances(self) -> list[PspBalanceReading]:
        """The Utility account's balance: an Account Balance query, then its result callback, waited for
        at most ``balance_wait`` seconds. Raises PspUnavailable (no answer in time, or the query failed),
        PspRejected (the query was refused)."""
        key = self._store.request_sent(kind=DarajaRequestKind.BALANCE)
        body = {
            "Initiator": self._config.initiator_name,
            "SecurityCredential": self._config.security_credential,
            "CommandID": "AccountBalance",
            "PartyA": self._config.shortcode,
            "IdentifierType": wire.IDENTIFIER_TYPE_SHORTCODE,
            "Remarks": "Balance",
            "QueueTimeOutURL": self.callback_url(wire.CallbackKind.BALANCE_TIMEOUT, key),
            "ResultURL": self.callback_url(wire.CallbackKind.BALANCE, key),
        }
        self._query(key, wire.BALANCE_PATH, operation="account_balance", json_body=body)
        # The answer comes by callback to the web process: this lane thread waits for its row, as it would
        # for a slow HTTP answer, and gives up after the deadline (the lane reads the balance again later).
        row = self._wait_for_answer(key)
        if row.answer == DarajaAnswer.BALANCE and row.balance is not None and row.balance_currency:
            return [
                PspBalanceReading(currency=row.balance_currency, total=row.balance, available=row.balance)
            ]
        raise PspUnavailable(
            f"mpesa account_balance: answered {row.answer} {row.result_code} {row.result_desc}".strip(),
            psp=NAME,
            psp_code=row.result_code,
        )

    def _wait_for_answer(self, key: str) -> DarajaRequest:
        deadline = time.monotonic() + float(self._config.balance_wait)
        while True:
            row = self._store.request(key=key)
            if row is not None and row.answered_at is not None:
                return row
            if time.monotonic() >= deadline:
                raise PspUnavailable(
                    f"mpesa account_balance: no result callback within {self._config.balance_wait} s",
                    psp=NAME,
                    reason=FailureReason.TIMEOUT,
                )
            self._sleep(_POLL_SECONDS)

    # --- callbacks -------------------------------------------------------------------------------

    def callback_url(self, kind: wire.CallbackKind, key: str) -> str:
        base = self._config.callback_base_url.rstrip("/")
        return f"{base}{wire.CALLBACK_PREFIX}/{self._config.callback_token}/{kind}/{key}"

    def callback_token_matches(self, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8"), self._config.callback_token.encode("utf-8"))

    def parse_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """A Daraja callback as its URL names it: the view passes the URL's segments as the headers
        ``wire.TOKEN_HEADER``, ``wire.KIND_HEADER``, ``wire.KEY_HEADER``. Daraja signs nothing, so the
        URL's secret token is the only check (WebhookSignatureInvalid when it does not match). The notice
        carries no status: a callback is never trusted as an answer (``callback_record`` files it, and a
        Transaction Status query confirms). The event id is a hash of the URL's kind and key and the body,
        so a replay (the body has no id, timestamp or nonce) is stored once."""
        if not self.callback_token_matches(headers.get(wire.TOKEN_HEADER, "")):
            raise WebhookSignatureInvalid("the callback URL's token does not match", psp=NAME)
        kind = headers.get(wire.KIND_HEADER, "")
        key = headers.get(wire.KEY_HEADER, "")
        if kind not in set(wire.CallbackKind) or not wire.callback_key_valid(key):
            raise PspRejected(
                f"not a Daraja callback URL ({kind[:32]!r}/{key[:64]!r})",
                psp=NAME,
                reason=FailureReason.UNSUPPORTED,
            )
        event_id = hashlib.sha256(f"{kind}\n{key}\n".encode() + body).hexdigest()
        return WebhookNotice(event_id=event_id, event_type=kind, reference=key, status=None)

    def callback_record(self, *, kind: str, key: str, body: bytes) -> CallbackRecord:
        """Record what a callback says (the caller verified its URL's token and stored it raw).

        A payment's Result or QueueTimeOut is a hint only: the next read asks Daraja again at once. A
        query's Result is recorded on the query its URL names (once). Returns the payout reference whose
        transfer is now due for a read ("" when none) and an outcome for the event row.
        """
        try:
            callback_kind = wire.CallbackKind(kind)
        except ValueError:
            return CallbackRecord("", "unknown_kind")
        if not wire.callback_key_valid(key):
            return CallbackRecord("", "bad_key")
        result = wire.result_of(body)
        if callback_kind in (wire.CallbackKind.PAYMENT, wire.CallbackKind.PAYMENT_TIMEOUT):
            echoed = str(result.get("OriginatorConversationID") or "") if result is not None else ""
            if echoed and echoed != key:
                logger.warning("mpesa.callback.reference_mismatch", extra={"psp": NAME, "reference": key})
            if not self._store.payment_hinted(reference=key):
                logger.warning("mpesa.callback.unknown_reference", extra={"psp": NAME, "reference": key})
                return CallbackRecord("", "unknown_reference")
            logger.info(
                "mpesa.callback.hint", extra={"psp": NAME, "reference": key, "kind": str(callback_kind)}
            )
            return CallbackRecord(key, "hint")
        expected = (
            DarajaRequestKind.STATUS
            if callback_kind in (wire.CallbackKind.STATUS, wire.CallbackKind.STATUS_TIMEOUT)
            else DarajaRequestKind.BALANCE
        )
        row = self._store.request(key=key)
        if row is None or row.kind != expected:
            logger.warning("mpesa.callback.unknown_query", extra={"psp": NAME, "kind": str(callback_kind)})
            return CallbackRecord("", "unknown_query")
        if callback_kind in (wire.CallbackKind.STATUS_TIMEOUT, wire.CallbackKind.BALANCE_TIMEOUT):
            # The QueueTimeOut body is undocumented (UNCONFIRMED); whatever it holds, the query timed out
            # in Daraja's queue and says nothing about the payment: the next read asks again.
            fields: dict[str, Any] = {"answer": DarajaAnswer.TIMEOUT}
        elif result is None:
            fields = {"answer": DarajaAnswer.ERROR, "result_desc": "unreadable callback body"}
        elif expected == DarajaRequestKind.STATUS:
            fields = wire.status_fields(result, reference=row.reference)
        else:
            fields = wire.balance_fields(result)
        if not self._store.query_answer(key=key, kind=expected, **fields):
            return CallbackRecord(row.reference, "already_answered")
        logger.info(
            "mpesa.callback.answer",
            extra={
                "psp": NAME,
                "reference": row.reference,
                "kind": str(callback_kind),
                "answer": fields["answer"],
            },
        )
        return CallbackRecord(row.reference, str(fields["answer"]))

    # --- queries ---------------------------------------------------------------------------------

    def _query_due(self, queries: list[DarajaRequest], payments: list[DarajaRequest]) -> bool:
        """Whether a read sends a new Transaction Status query ("polling" is a query, then its callback).

        No, only when the newest query has an answer no read has used yet and nothing happened since it
        was sent (a send, or a payment's Result/QueueTimeOut callback): its callback made this read due,
        and the read takes that answer. Each answer serves one read, so a callback never sets off a
        query-callback-read loop; the lane's next scheduled read asks afresh. Every other read asks: the
        deadline for a query's callback is the lane's next read of the transfer (Daraja does not retry a
        callback, so a lost one is replaced by the next query, never waited for).
        """
        if not queries:
            return True
        latest = queries[0]
        if any(
            payment.sent_at > latest.sent_at
            or (payment.hinted_at is not None and payment.hinted_at > latest.sent_at)
            for payment in payments
        ):
            return True
        return latest.answered_at is None or not self._store.answer_read(key=latest.key)

    def _look_up_after_duplicate(self, reference: str) -> None:
        """Daraja has this OriginatorConversationID: ask its status now (protocol section 7: a duplicate
        means look it up), so the answer is on its way before the node's next read. Best effort: a query
        that cannot be sent now is sent by that read."""
        try:
            self._query_status(reference)
        except PspError as exc:
            logger.warning(
                "mpesa.status.not_asked", extra={"psp": NAME, "reference": reference, "error": exc.message}
            )

    def _query_status(self, reference: str) -> None:
        """Send a Transaction Status query by OriginalConversationID; its result comes by callback."""
        while True:
            empty_transaction_id = self._empty_transaction_id
            key = self._store.request_sent(kind=DarajaRequestKind.STATUS, reference=reference)
            body: dict[str, object] = {
                "Initiator": self._config.initiator_name,
                "SecurityCredential": self._config.security_credential,
                "CommandID": "TransactionStatusQuery",
                "OriginalConversationID": reference,
                "PartyA": self._config.shortcode,
                "IdentifierType": wire.IDENTIFIER_TYPE_SHORTCODE,
                "ResultURL": self.callback_url(wire.CallbackKind.STATUS, key),
                "QueueTimeOutURL": self.callback_url(wire.CallbackKind.STATUS_TIMEOUT, key),
                "Remarks": "Payout status",
            }
            if empty_transaction_id:
                body["TransactionID"] = ""
            try:
                self._query(key, wire.STATUS_PATH, operation="transaction_status", json_body=body)
            except PspRejected as exc:
                if not empty_transaction_id and "transactionid" in exc.message.lower().replace(" ", ""):
                    self._empty_transaction_id = True
                    logger.warning("mpesa.status.transaction_id_required", extra={"psp": NAME})
                    continue
                raise
            logger.info("mpesa.status.asked", extra={"psp": NAME, "reference": reference})
            return

    def _query(self, key: str, path: str, *, operation: str, json_body: Mapping[str, object]) -> None:
        """POST a query whose row ``key`` is written; record the acknowledgement. Raises PspUnavailable
        (no answer: the row stays open), PspRejected (refused: the row is closed)."""
        answer = self._call(path, operation=operation, json_body=json_body)
        ack = wire.acknowledgement(answer)
        if ack is not None and wire.is_zero(ack[0]):
            self._store.request_answered_http(key=key, send=DarajaSend.ACCEPTED, conversation_id=ack[1])
            return
        if ack is not None:
            self._store.request_answered_http(key=key, send=DarajaSend.REFUSED)
            raise PspRejected(
                f"mpesa {operation}: ResponseCode {ack[0]} {ack[2]}".strip(),
                psp=NAME,
                http_status=answer.status,
                psp_code=ack[0],
                request_id=answer.request_id,
            )
        error = wire.refusal(answer, operation=operation)
        if isinstance(error, PspRejected):
            self._store.request_answered_http(key=key, send=DarajaSend.REFUSED)
        raise error

    # --- HTTP and the token ----------------------------------------------------------------------

    def _call(self, path: str, *, operation: str, json_body: Mapping[str, object]) -> http.HttpAnswer:
        """One POST with the shared token; when Daraja refuses the token, a new one and one repeat."""
        for attempt in (1, 2):
            token = self._access_token()
            answer = http.send(
                self._session,
                "POST",
                self._config.base_url.rstrip("/") + path,
                psp=NAME,
                operation=operation,
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {token.value}"},
                json_body=json_body,
            )
            if attempt == 1 and wire.token_refused(answer):
                logger.info("mpesa.token.refused", extra={"psp": NAME, "operation": operation})
                self._store.token_expire(generation=token.generation)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _access_token(self) -> daraja.Token:
        """The app's shared token; this process fetches a new one only when it wins the refresh claim."""
        deadline = time.monotonic() + self._token_lease.total_seconds()
        while True:
            token = self._store.token()
            now = timezone.now()
            if token is not None and now < token.refresh_at:
                return token
            generation = token.generation if token is not None else self._store.token_generation()
            if self._store.token_claim_refresh(generation=generation, lease=self._token_lease):
                try:
                    value, lifetime = self._fetch_token()
                except BaseException:
                    self._store.token_release()
                    raise
                return self._store.token_save(
                    value=value, lifetime=lifetime, margin=min(_REFRESH_MARGIN, lifetime / 2)
                )
            if token is not None and now < token.expires_at:
                return token  # another process is refreshing it; this one is still valid meanwhile
            if time.monotonic() >= deadline:
                raise PspUnavailable(
                    "mpesa token: another process is fetching a new token",
                    psp=NAME,
                    reason=FailureReason.TIMEOUT,
                )
            self._sleep(_POLL_SECONDS)

    def _fetch_token(self) -> tuple[str, timedelta]:
        answer = http.send(
            self._session,
            "GET",
            self._config.base_url.rstrip("/") + wire.TOKEN_PATH,
            psp=NAME,
            operation="token_create",
            timeout=self._timeout,
            params={"grant_type": "client_credentials"},
            auth=(self._config.consumer_key, self._config.consumer_secret),
        )
        if answer.status != 200:
            raise wire.refusal(answer, operation="token_create")
        body = answer.body if isinstance(answer.body, Mapping) else {}
        value = body.get("access_token")
        expires_in = http.decimal_or_none(body.get("expires_in"))  # a number, or a string in some answers
        if not isinstance(value, str) or not value:
            raise PspUnavailable(
                "mpesa token_create: no access_token in the answer", psp=NAME, http_status=answer.status
            )
        seconds = float(expires_in) if expires_in is not None and expires_in > 0 else 3600.0
        logger.info("mpesa.token.created", extra={"psp": NAME, "expires_in": seconds})
        return value, timedelta(seconds=seconds)
