"""Structured logging: one JSON object per line (or a readable console line in development).

Every logger — the project's ``logging.getLogger(__name__)`` calls with ``extra={...}``, Django's,
django-q2's, and ``structlog.get_logger()`` — goes through the same structlog processor chain
(``build_formatter``, wired by ``LOGGING`` in settings), so each line carries:

``event``       the stable event name (``order.received``) or the message
``level``, ``logger``, ``timestamp`` (UTC, ISO 8601)
``request_id``  the correlation id of the work in progress (``provision.request_context``): the HTTP
                request's, or the django-q2 task's (``provision.task_context``)
the record's ``extra`` fields and anything bound with ``structlog.contextvars.bind_contextvars``.

Redaction (``redact``), applied to every line whatever logged it:
* values under account-like keys (``ACCOUNT_KEYS``) keep only their last four characters;
* keys that name a secret (``SECRET_KEY_PARTS``: secret, signature, authorization, api key, token,
  password) are dropped with their values;
* the configured secrets themselves (``SECRET_SETTINGS``) are replaced by ``[REDACTED]`` wherever
  they appear in a string, including exception text and tracebacks.
Tracebacks are rendered as text without local variables, so locals never reach the logs.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

from provision import request_context

# Compared after lower-casing and removing "_" and "-": accountIdentifier == account_identifier.
ACCOUNT_KEYS = frozenset(
    {"account", "accountidentifier", "accountnumber", "phone", "phonenumber", "msisdn", "partyid"}
)
SECRET_KEY_PARTS = ("secret", "signature", "authorization", "apikey", "token", "password")
# Settings whose values must never appear in a log line, whatever key (or text) carries them.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "AGGREGATOR_SECRET_KEY",
    "AGGREGATOR_PREVIOUS_SECRET_KEY",
    "LENCO_API_KEY",
    "MTN_MOMO_SUBSCRIPTION_KEY",
    "MTN_MOMO_API_KEY",
    "PAYSTACK_SECRET_KEY",
    "MPESA_CONSUMER_KEY",
    "MPESA_CONSUMER_SECRET",
    "MPESA_INITIATOR_PASSWORD",
    "MPESA_SECURITY_CREDENTIAL",
    "MPESA_CALLBACK_TOKEN",
    "AIRTEL_CLIENT_SECRET",
    "AIRTEL_CALLBACK_SECRET",
    "SANDBOX_WEBHOOK_SECRET",
    "METRICS_TOKEN",
    # A Slack-style webhook URL is its own credential; the mail password comes from EMAIL_URL.
    "NOTIFY_CHAT_WEBHOOK_URL",
    "EMAIL_HOST_PASSWORD",
)
REDACTED = "[REDACTED]"
_MIN_SECRET_LENGTH = 8  # shorter values would redact ordinary words
_KEY_NOISE = re.compile(r"[_\-\s]")


class RequestIdFilter(logging.Filter):
    """Put the correlation id on the record (for handlers that format ``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_context.get_request_id()
        return True


def mask_account(account: str | None) -> str:
    """Show only the last four characters of an account number: ``******6789``."""
    if not account:
        return ""
    return "*" * max(len(account) - 4, 0) + account[-4:]


def _normalise(key: str) -> str:
    return _KEY_NOISE.sub("", key.lower())


@functools.lru_cache(maxsize=2048)  # field names repeat on every line: decide each once
def is_secret_key(key: str) -> bool:
    normalised = _normalise(key)
    return any(part in normalised for part in SECRET_KEY_PARTS)


@functools.lru_cache(maxsize=2048)
def is_account_key(key: str) -> bool:
    return _normalise(key) in ACCOUNT_KEYS


def _secret_values() -> list[str]:
    from django.conf import settings

    if not settings.configured:
        return []
    return _configured_secrets()


@functools.cache  # read for every line; settings change only in tests, which send setting_changed
def _configured_secrets() -> list[str]:
    from django.conf import settings

    values = (str(getattr(settings, name, "") or "") for name in SECRET_SETTINGS)
    return sorted({v for v in values if len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)


def forget_secrets(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: a changed secret setting is read again on the next line."""
    if setting in SECRET_SETTINGS:
        _configured_secrets.cache_clear()


def _scrub_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, Mapping):
        return _redact_mapping(value, secrets)
    if isinstance(value, list | tuple):
        return [_redact_value(item, secrets) for item in value]
    return value


def _redact_mapping(mapping: Mapping[Any, Any], secrets: list[str]) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key, value in mapping.items():
        name = str(key)
        if is_secret_key(name):
            continue
        if is_account_key(name) and isinstance(value, str | int):
            result[key] = mask_account(str(value))
        else:
            result[key] = _redact_value(value, secrets)
    return result


def redact_payload(payload: Mapping[Any, Any]) -> dict[str, Any]:
    """A JSON-ready copy of a PSP payload for storage: account numbers masked, secrets dropped."""
    return _jsonable(_redact_mapping(payload, _secret_values()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def redact(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Mask account numbers, drop secret-named keys, and blank out configured secret values."""
    return _redact_mapping(event_dict, _secret_values())


def add_request_id(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("request_id", request_context.get_request_id())
    return event_dict


def _describe_request(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Django passes the request object in ``extra``; log what it was, not its repr."""
    request = event_dict.get("request")
    if request is not None and hasattr(request, "method") and hasattr(request, "path"):
        event_dict["request"] = f"{request.method} {request.path}"
    return event_dict


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(str(item) for item in value)
    return repr(value)


def _dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def shared_processors() -> list[Processor]:
    """The chain every record goes through before rendering (stdlib and structlog loggers alike)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        add_request_id,
        _describe_request,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,
    ]


def renderer(fmt: str) -> Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(serializer=_dumps)


def configure_structlog() -> None:
    """Route ``structlog.get_logger()`` through stdlib logging, so both end up in the same handlers."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def build_formatter(fmt: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """The ``()`` factory ``LOGGING`` names: ``fmt`` is ``json`` (production) or ``console`` (DEBUG)."""
    if fmt not in {"json", "console"}:
        raise ValueError(f"unknown log format {fmt!r}: expected json or console")
    configure_structlog()
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer(fmt)],
    )
