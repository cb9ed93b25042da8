"""The aggregator's provider API (``/v1/provider/...``), signed the Go way.

Every request body is the Go-canonical bytes of the payload plus a fresh integer ``timestamp`` per
attempt, and the ``Authorization: HMAC <client_id>:<hex>`` signature is over exactly those bytes
(protocol/aggregator.md C.1). GET requests sign their query parameters as strings plus the timestamp.

Errors are classified for the outbox: ``AggregatorUnavailable`` (connection error, timeout, 429, 5xx,
including the fork's 500-with-empty-body on a first ``success`` fulfil) may be retried;
``AggregatorRefused`` (any other 4xx) is final.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import requests

from provision import canonical_json, metrics, request_context, signing, untrusted_json

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AggregatorConfig:
    base_url: str
    provider_path: str
    client_id: str
    secret: str
    connect_timeout: float
    read_timeout: float

    @classmethod
    def from_settings(cls) -> AggregatorConfig:
        from django.conf import settings

        return cls(
            base_url=settings.AGGREGATOR_BASE_URL,
            provider_path=settings.AGGREGATOR_PROVIDER_PATH,
            client_id=settings.AGGREGATOR_CLIENT_ID,
            secret=settings.AGGREGATOR_SECRET_KEY,
            connect_timeout=float(settings.AGGREGATOR_CONNECT_TIMEOUT),
            read_timeout=float(settings.AGGREGATOR_READ_TIMEOUT),
        )


@dataclass(frozen=True)
class AggregatorAnswer:
    status_code: int
    message: str
    data: Any


class AggregatorError(Exception):
    retryable = False

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after


class AggregatorUnavailable(AggregatorError):
    """The outcome is unknown (network error, timeout, 429, 5xx): retry later with a fresh signature."""

    retryable = True


class AggregatorRefused(AggregatorError):
    """A definitive 4xx (other than 429)."""


@dataclass(frozen=True)
class AcceptedOrder:
    """The 201 data of accept: the only place the recipient arrives from (fork and upstream)."""

    order_id: str
    amount: Decimal | None
    institution: str
    account_identifier: str
    account_name: str
    memo: str
    metadata: dict[str, Any] | None


def _call_name(url: str) -> str:
    """accept, decline, fulfill, cancel, balances or orders: the label of a provider API call."""
    path = url.split("?", 1)[0].rstrip("/")
    return (
        path.rsplit("/", 1)[-1]
        if path.endswith(("accept", "decline", "fulfill", "cancel", "balances"))
        else "orders"
    )


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


_sessions = threading.local()


def shared_session(base_url: str) -> requests.Session:
    """This thread's session to the aggregator: its connections are pooled (kept alive between calls, a
    connection the aggregator closed meanwhile is replaced before use) and never retried by requests itself
    (the callers decide: the outbox retries with a fresh signature). The proxy environment and the CA bundle
    (``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else requests' own) are read when the session is made, not
    from the environment on every request, so a ``.netrc`` entry can never replace the signed
    ``Authorization`` header. A forked process starts its own."""
    session: requests.Session | None = getattr(_sessions, "session", None)
    if session is None or _sessions.pid != os.getpid():
        session = requests.Session()
        session.trust_env = False
        session.proxies = dict(requests.utils.get_environ_proxies(base_url))
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        _sessions.session, _sessions.pid = session, os.getpid()
    return session


class AggregatorClient:
    def __init__(
        self,
        config: AggregatorConfig,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.session = session or shared_session(config.base_url)
        self.clock = clock

    def _url(self, path: str) -> str:
        return f"{self.config.base_url}{self.config.provider_path}/{path.lstrip('/')}"

    def _auth_headers(self, signature: str) -> dict[str, str]:
        return {
            "Authorization": f"HMAC {self.config.client_id}:{signature}",
            "Content-Type": "application/json",
            "X-Request-ID": request_context.get_request_id()
            if request_context.get_request_id() != "-"
            else request_context.new_request_id(),
        }

    def post(self, path: str, payload: Mapping[str, Any]) -> AggregatorAnswer:
        body, signature = signing.signed_body(self.config.secret, payload, timestamp=int(self.clock()))
        return self._send("POST", self._url(path), data=body, headers=self._auth_headers(signature))

    def get(self, path: str, params: Mapping[str, str]) -> AggregatorAnswer:
        timestamp = int(self.clock())
        signed = canonical_json.go_dumps(canonical_json.query_payload(params, timestamp))
        signature = signing.sign(self.config.secret, signed)
        query = urlencode({**params, "timestamp": str(timestamp)})
        return self._send("GET", f"{self._url(path)}?{query}", headers=self._auth_headers(signature))

    def _send(
        self, method: str, url: str, *, headers: dict[str, str], data: bytes | None = None
    ) -> AggregatorAnswer:
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
            )
        except requests.RequestException as exc:
            metrics.aggregator_call(
                call=_call_name(url), outcome="unavailable", seconds=time.monotonic() - started
            )
            error = type(exc).__name__
            logger.warning("aggregator.unreachable", extra={"method": method, "url": url, "error": error})
            raise AggregatorUnavailable(f"aggregator unreachable: {error}") from exc
        status, retry_after = response.status_code, response.headers.get("Retry-After")
        elapsed_ms = int((time.monotonic() - started) * 1000)
        outcome = "ok" if status < 400 else "unavailable" if status == 429 or status >= 500 else "refused"
        metrics.aggregator_call(call=_call_name(url), outcome=outcome, seconds=time.monotonic() - started)
        message, data_ = self._decode(response.content)
        logger.info(
            "aggregator.call",
            extra={"method": method, "url": url, "status": status, "elapsed_ms": elapsed_ms},
        )
        if status == 429 or status >= 500:
            raise AggregatorUnavailable(
                message or f"HTTP {status}",
                status_code=status,
                retry_after=_parse_retry_after(retry_after),
            )
        if status >= 400:
            raise AggregatorRefused(message or f"HTTP {status}", status_code=status)
        return AggregatorAnswer(status_code=status, message=message, data=data_)

    @staticmethod
    def _decode(content: bytes) -> tuple[str, Any]:
        if not content:
            return "", None
        try:
            body = untrusted_json.loads(content)
        except untrusted_json.JsonRefused:
            return content.decode("utf-8", "replace")[:200], None
        if not isinstance(body, dict):
            return "", body
        return str(body.get("message") or ""), body.get("data")

    # --- the provider API ---------------------------------------------------------------------------------

    def accept(self, order_id: str) -> AcceptedOrder:
        answer = self.post(f"orders/{order_id}/accept", {})
        data = answer.data if isinstance(answer.data, dict) else {}
        return accepted_order_from(data, fallback_id=order_id)

    def decline(self, order_id: str, reason: str) -> AggregatorAnswer:
        return self.post(f"orders/{order_id}/decline", {"reason": reason})

    def fulfil(
        self, order_id: str, *, psp: str, tx_id: str, validation_status: str, validation_error: str = ""
    ) -> AggregatorAnswer:
        return self.post(
            f"orders/{order_id}/fulfill", fulfil_payload(psp, tx_id, validation_status, validation_error)
        )

    def cancel(self, order_id: str, reason: str) -> AggregatorAnswer:
        return self.post(f"orders/{order_id}/cancel", {"reason": reason})

    def balances(self, *, currency: str, available: str, total: str, reserved: str) -> AggregatorAnswer:
        return self.post(
            "balances",
            {
                "currency": currency,
                "availableBalance": available,
                "totalBalance": total,
                "reservedBalance": reserved,
            },
        )

    def list_orders(
        self, *, currency: str, status: str = "", page: int = 1, page_size: int = 50
    ) -> list[dict[str, Any]]:
        params = {"currency": currency, "page": str(page), "pageSize": str(page_size)}
        if status:
            params["status"] = status
        answer = self.get("orders", params)
        data = answer.data if isinstance(answer.data, dict) else {}
        orders = data.get("orders") or []
        return [order for order in orders if isinstance(order, dict)]


def fulfil_payload(
    psp: str, tx_id: str, validation_status: str, validation_error: str = ""
) -> dict[str, str]:
    payload = {
        "psp": psp,
        "txId": tx_id,
        "validationStatus": validation_status,
        # Seed-flavour aggregators read transactionHash; the Go aggregator ignores unknown keys.
        "transactionHash": tx_id,
    }
    if validation_error:
        payload["validationError"] = validation_error
    return payload


def accepted_order_from(data: Mapping[str, Any], *, fallback_id: str) -> AcceptedOrder:
    amount_text = data.get("amount")
    try:
        amount = Decimal(str(amount_text)) if amount_text not in (None, "") else None
    except ArithmeticError:
        amount = None
    metadata = data.get("metadata")
    return AcceptedOrder(
        order_id=str(data.get("id") or fallback_id),
        amount=amount,
        institution=str(data.get("institution") or ""),
        account_identifier=str(data.get("accountIdentifier") or ""),
        account_name=str(data.get("accountName") or ""),
        memo=str(data.get("memo") or ""),
        metadata=metadata if isinstance(metadata, dict) else None,
    )
