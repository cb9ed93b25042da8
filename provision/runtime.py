"""The node's runtime settings: the environment's values, overridden by what staff changed in admin.

Every read of mode, manual policy, approval timeout, order limits, review, maker-checker and critical
balance thresholds goes through ``current()``. The environment (``settings.*``, from ``.env``) gives the
defaults; the ``NodeSettings`` row (admin, settings role) overrides only the fields staff filled in.

Freshness: the row is read at most once per ``TTL_SECONDS`` per process (a monotonic clock), and again at
once in the process that saved it (``forget``). Another process may therefore decide with the previous
value for up to ``TTL_SECONDS`` after a change: a few seconds, the bound the money decisions accept, for
one indexed primary-key read instead of one per decision. The environment part is read on every call, so
a test's ``settings`` override applies at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from provision.env import parse_amount_map
from provision.models import NodeSettings

TTL_SECONDS = 2.0

# NodeSettings field -> the settings name it overrides.
FIELDS = {
    "provision_mode": "PROVISION_MODE",
    "manual_policy": "MANUAL_POLICY",
    "manual_approval_timeout": "MANUAL_APPROVAL_TIMEOUT",
    "min_order_amount": "MIN_ORDER_AMOUNT",
    "max_order_amount": "MAX_ORDER_AMOUNT",
    "manual_review_above": "MANUAL_REVIEW_ABOVE",
    "maker_checker_above": "MAKER_CHECKER_ABOVE",
    "critical_balance_threshold": "CRITICAL_BALANCE_THRESHOLD",
}
AMOUNT_FIELDS = frozenset(
    {
        "min_order_amount",
        "max_order_amount",
        "manual_review_above",
        "maker_checker_above",
        "critical_balance_threshold",
    }
)


@dataclass(frozen=True)
class Runtime:
    provision_mode: str
    manual_policy: str
    manual_approval_timeout: int
    min_order_amount: dict[str, Decimal]
    max_order_amount: dict[str, Decimal]
    manual_review_above: dict[str, Decimal]
    maker_checker_above: dict[str, Decimal]
    critical_balance_threshold: dict[str, Decimal]

    @property
    def staff_policy(self) -> bool:
        """Manual mode with the ``staff`` policy: staff accept or decline each offer themselves."""
        return self.provision_mode == "manual" and self.manual_policy == "staff"


_lock = threading.Lock()
_cached: dict[str, Any] = {}
_cached_until = 0.0


def _overrides() -> dict[str, Any]:
    """The fields staff changed, parsed (read from the database at most once per TTL)."""
    global _cached, _cached_until
    now = time.monotonic()
    with _lock:
        if now < _cached_until:
            return _cached
    try:
        row = NodeSettings.objects.filter(pk=1).values(*FIELDS).first()
    except DatabaseError:
        row = None  # before migrations: the environment alone
    overrides = {}
    for field, value in (row or {}).items():
        if value in ("", None):
            continue
        overrides[field] = parse_amount_map(value) if field in AMOUNT_FIELDS else value
    with _lock:
        _cached, _cached_until = overrides, now + TTL_SECONDS
    return overrides


def forget() -> None:
    """Read the row again on the next call (after a save in this process; between tests)."""
    global _cached_until
    with _lock:
        _cached_until = 0.0


def environment_value(field: str) -> Any:
    return getattr(settings, FIELDS[field])


def current() -> Runtime:
    """The settings in effect now: each field from the admin row when staff set it, else the environment."""
    overrides = _overrides()
    return Runtime(**{field: overrides.get(field, environment_value(field)) for field in FIELDS})
