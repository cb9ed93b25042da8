"""The one place the node reads its environment.

Every setting is read through :func:`setting`, so a missing or malformed value stops the boot with one
line naming the variable and what is expected (``ConfigurationError``) instead of a traceback later
inside a request. ``manage.py`` and ``wsgi.py`` print that line and exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if os.environ.get("PROVISION_READ_DOTENV", "1") == "1" and (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

T = TypeVar("T")
_MISSING: Any = object()


class ConfigurationError(ImproperlyConfigured):
    """A setting is missing or malformed; the message names the variable and what it expects."""


def setting(name: str, parse: Callable[[str], T], *, default: T = _MISSING, expected: str) -> T:
    """Read ``name`` from the environment and parse it, or fail with one clear line."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        if default is _MISSING:
            raise ConfigurationError(f"{name} is required: expected {expected}")
        return default
    try:
        return parse(raw.strip())
    except (ValueError, InvalidOperation, ImproperlyConfigured) as exc:
        raise ConfigurationError(f"{name}={raw!r} is invalid: expected {expected} ({exc})") from None


# Values that are examples, not secrets: what .env.example and the docs show, and common stand-ins.
PLACEHOLDER_SECRETS = frozenset(
    {"secret", "password", "changeme", "change-me", "change_me", "test", "example", "placeholder", "xxx"}
)
_PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me", "replace-me", "replace_me", "your-", "<")
MIN_DISTINCT_CHARACTERS = 5  # as Django's own check of SECRET_KEY (security.W009)


def check_secret(
    name: str, value: str, *, min_length: int, expected: str, placeholders: frozenset[str] = frozenset()
) -> None:
    """Refuse a secret that is a known placeholder, shorter than ``min_length`` or made of a handful of
    characters, with one line naming the variable (never the value). The settings call it unless DEBUG."""
    lowered = value.strip().lower()
    if (
        lowered in PLACEHOLDER_SECRETS
        or value in placeholders
        or any(mark in lowered for mark in _PLACEHOLDER_MARKS)
    ):
        raise ConfigurationError(
            f"{name} is a placeholder, not a secret: expected {expected} (refused unless DEBUG=true)"
        )
    if len(value) < min_length:
        raise ConfigurationError(
            f"{name} is too short ({len(value)} characters): expected {expected}, "
            f"at least {min_length} characters (refused unless DEBUG=true)"
        )
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        raise ConfigurationError(
            f"{name} has too few different characters to be random: expected {expected} "
            "(refused unless DEBUG=true)"
        )


def parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("not a boolean")


def parse_int(raw: str) -> int:
    return int(raw)


def parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def parse_int_non_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_rate(raw: str) -> Decimal:
    value = Decimal(raw)
    if not value.is_finite() or not 0 <= value <= 1:
        raise ValueError("must be between 0 and 1")
    return value


def parse_port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise ValueError("must be between 1 and 65535")
    return value


def parse_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_currencies(raw: str) -> list[str]:
    codes = [code.upper() for code in parse_list(raw)]
    if not codes:
        raise ValueError("no currency given")
    for code in codes:
        if not (code.isascii() and code.isalpha() and 3 <= len(code) <= 7):
            raise ValueError(f"{code!r} is not a currency code")
    return codes


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return value

    return parse


def parse_decimal(raw: str) -> Decimal:
    value = Decimal(raw)
    if not value.is_finite() or value < 0:
        raise ValueError("must be a non-negative decimal number")
    return value


def parse_amount_map(raw: str) -> dict[str, Decimal]:
    """``"5000"`` (every currency) or ``"NGN:5000,KES:100"``; ``*`` is the fallback key."""
    result: dict[str, Decimal] = {}
    for item in parse_list(raw):
        currency, sep, amount = item.rpartition(":")
        key = currency.strip().upper() if sep else "*"
        result[key] = parse_decimal(amount.strip())
    return result


def parse_url(raw: str) -> str:
    if raw == "":
        return raw
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return raw.rstrip("/")


def parse_url_token(raw: str) -> str:
    """A secret that goes into a URL path: at least 32 characters of ``A-Z a-z 0-9 _ -``."""
    if len(raw) < 32 or not all(char.isascii() and (char.isalnum() or char in "_-") for char in raw):
        raise ValueError("at least 32 characters of A-Z a-z 0-9 _ -")
    return raw


def parse_database_url(raw: str) -> dict[str, Any]:
    return dict(env.db_url_config(raw))


def parse_cache_url(raw: str) -> dict[str, Any]:
    return dict(env.cache_url_config(raw))


def parse_email_url(raw: str) -> dict[str, Any]:
    return dict(env.email_url_config(raw))
