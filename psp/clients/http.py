"""Plumbing shared by the PSP clients: sessions, timeouts, and turning transport trouble into PspUnavailable.

``send`` returns an ``HttpAnswer`` for every answer the adapter must judge itself (2xx, 4xx) and raises
``PspUnavailable`` for everything whose outcome is unknown: connection errors, timeouts, 429, 5xx and bodies
that are not JSON. JSON is parsed with ``parse_float=Decimal``; NaN/Infinity are refused. URLs never reach a
log line or an exception message, because some carry account numbers.
"""

from __future__ import annotations

import email.utils
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from provision import untrusted_json
from psp.base import FailureReason, PspUnavailable, WebhookBodyRefused

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = Decimal("5")

Timeout = tuple[float, float]


def make_session(*, user_agent: str = "provision-node", connections: int | None = None) -> requests.Session:
    """A session that keeps up to ``connections`` connections per host for reuse: as many as calls may be
    in flight at once (by default the payout lane's threads, ``PAYOUT_LANE_THREADS``), so none is closed
    after its call and opened afresh (a TLS handshake) for the next."""
    session = requests.Session()
    session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
    adapter = HTTPAdapter(pool_maxsize=connections or settings.PAYOUT_LANE_THREADS)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def timeouts(*, read: Decimal | float, connect: Decimal | float = DEFAULT_CONNECT_TIMEOUT) -> Timeout:
    """The (connect, read) pair requests wants; seconds are not money, so float is fine here."""
    return (float(connect), float(read))


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: Any  # parsed JSON (non-integers as Decimal), or None for an empty body
    headers: Mapping[str, str] = field(repr=False)
    request_id: str = ""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header look-up that works on plain dicts too."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def loads(raw: bytes | str) -> Any:
    """JSON with Decimal for every non-integer number; raises ValueError on anything unreadable.

    PSP answers and webhooks are untrusted bytes: :func:`provision.untrusted_json.loads` refuses deep
    nesting, non-UTF-8 bytes and lone surrogates with ``UnsafeJson`` (a ``JsonRefused``, a ValueError).
    """
    return untrusted_json.loads(raw)


def webhook_loads(body: bytes, *, psp: str) -> Any:
    """A webhook body as JSON, for the adapter to judge: ValueError when it is not JSON, and
    WebhookBodyRefused (the view answers 400 and stores nothing) for :class:`UnsafeJson` - bytes no
    adapter may tolerate, whatever it does with merely unreadable ones."""
    try:
        return loads(body)
    except untrusted_json.UnsafeJson as exc:
        logger.warning("psp.webhook.body_refused", extra={"psp": psp, "reason": str(exc)[:200]})
        raise WebhookBodyRefused(f"Webhook body refused: {exc}", psp=psp) from None


def dumps(payload: object) -> str:
    """Compact JSON in which a Decimal is written as a JSON number, digit for digit (no float on the way)."""
    nonce = uuid.uuid4().hex
    numbers: dict[str, str] = {}

    def swap(value: object) -> object:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError("cannot send a non-finite Decimal")
            token = f"{nonce}:{len(numbers)}"
            numbers[token] = format(value, "f")
            return token
        if isinstance(value, Mapping):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [swap(item) for item in value]
        return value

    text = json.dumps(swap(payload), separators=(",", ":"), ensure_ascii=False)
    for token, number in numbers.items():
        text = text.replace(json.dumps(token), number)
    return text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from Retry-After (delta-seconds or HTTP date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = Decimal(value)
    except InvalidOperation:
        pass
    else:
        return float(seconds) if seconds.is_finite() and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_code(body: object) -> str:
    if isinstance(body, Mapping):
        for key in ("errorCode", "code"):
            value = body.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
    return ""


def error_message(body: object) -> str:
    if isinstance(body, Mapping):
        for key in ("message", "errorMessage"):  # errorMessage: Daraja's (M-Pesa) gateway errors
            value = body.get(key)
            if isinstance(value, str):
                return value
    return ""


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    psp: str,
    operation: str,
    timeout: Timeout,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    json_body: object = None,
    raw_json: bytes | None = None,
    auth: tuple[str, str] | None = None,
    sensitive_url: bool = False,
    reason_for_code: Callable[[str], FailureReason] | None = None,
) -> HttpAnswer:
    """Make one HTTP call (no retries). Raises PspUnavailable when the outcome is unknown.

    ``raw_json`` is a JSON body already serialised, sent byte for byte (a PSP that signs the exact body
    bytes); otherwise ``json_body`` is serialised with ``dumps``. ``sensitive_url`` says the URL carries an
    account identifier: the requests exception (whose text holds the URL) is then not chained onto the
    PspUnavailable, so a logged traceback cannot leak it.
    """
    all_headers = dict(headers or {})
    data: bytes | None = raw_json
    if data is None and json_body is not None:
        data = dumps(json_body).encode("utf-8")
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    log_extra = {"psp": psp, "operation": operation}
    try:
        response = session.request(
            method,
            url,
            headers=all_headers,
            params=params,
            data=data,
            auth=auth,
            timeout=timeout,
            allow_redirects=False,  # a redirected POST would silently become a GET; 3xx is the adapter's call
        )
    except requests.RequestException as exc:
        is_timeout = isinstance(exc, requests.Timeout)
        logger.warning(
            "psp.http.no_answer", extra={**log_extra, "error": type(exc).__name__, "timeout": is_timeout}
        )
        unavailable = PspUnavailable(
            f"{psp} {operation}: {type(exc).__name__}",
            psp=psp,
            reason=FailureReason.TIMEOUT if is_timeout else FailureReason.OTHER,
        )
        if sensitive_url:
            raise unavailable from None
        raise unavailable from exc

    status = response.status_code
    request_id = header(response.headers, "X-Request-Id") or ""
    retry_after = parse_retry_after(header(response.headers, "Retry-After"))
    if status == 429:
        logger.warning("psp.http.rate_limited", extra={**log_extra, "retry_after": retry_after})
        raise PspUnavailable(
            f"{psp} {operation}: rate limited (429)",
            psp=psp,
            http_status=status,
            retry_after=retry_after,
            request_id=request_id,
        )
    body: Any = None
    if response.content.strip():
        try:
            body = loads(response.content)
        except ValueError:
            logger.warning("psp.http.unreadable_answer", extra={**log_extra, "http_status": status})
            raise PspUnavailable(
                f"{psp} {operation}: unreadable answer (HTTP {status}, not JSON)",
                psp=psp,
                http_status=status,
                retry_after=retry_after,
                request_id=request_id,
            ) from None
    if status >= 500:
        code = error_code(body)
        reason = reason_for_code(code) if reason_for_code is not None and code else FailureReason.OTHER
        logger.warning("psp.http.server_error", extra={**log_extra, "http_status": status, "psp_code": code})
        raise PspUnavailable(
            " ".join(
                part for part in (f"{psp} {operation}: HTTP {status}", code, error_message(body)) if part
            ),
            psp=psp,
            reason=reason,
            http_status=status,
            psp_code=code,
            retry_after=retry_after,
            request_id=request_id,
        )
    return HttpAnswer(status=status, body=body, headers=dict(response.headers), request_id=request_id)


def decimal_or_none(value: object) -> Decimal | None:
    """A PSP amount (string, int or Decimal) as a finite Decimal, or None when absent or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def datetime_or_none(value: object) -> datetime | None:
    """An ISO 8601 time-stamp (``2024-01-01T00:00:00.447Z``) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def mask(identifier: str) -> str:
    """An account number or phone for logs: only the last four characters survive."""
    return "****" + identifier[-4:] if len(identifier) > 4 else "****"
