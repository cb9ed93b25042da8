"""Rate strings of ``THROTTLE_RATES`` (``provision.throttling``), parsed without importing DRF: the
settings module uses them, and importing DRF while the settings module loads would read settings that
do not exist yet."""

from __future__ import annotations

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNITS = {
    "s": "s",
    "sec": "s",
    "second": "s",
    "m": "m",
    "min": "m",
    "minute": "m",
    "h": "h",
    "hour": "h",
    "d": "d",
    "day": "d",
}


def parse_rate(raw: str) -> tuple[int, int] | None:
    """``"600/min"`` -> (600, 60); ``"off"`` -> None (not limited). Raises ValueError."""
    text = raw.strip().lower()
    if text in {"off", "none", "unlimited"}:
        return None
    count, sep, unit = text.partition("/")
    if not sep or unit not in _UNITS:
        raise ValueError(f"{raw!r} is not a rate: expected <number>/<s|min|hour|day> or off")
    number = int(count)
    if number <= 0:
        raise ValueError(f"{raw!r}: the number of requests must be positive (use 'off' for no limit)")
    return number, PERIODS[_UNITS[unit]]


def parse_rates(raw: str) -> dict[str, str]:
    """``"new_order=60000/min, webhooks=off"`` -> {"new_order": "60000/min", "webhooks": "off"}."""
    rates: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        scope, sep, rate = item.partition("=")
        if not sep or not scope.strip():
            raise ValueError(f"{item.strip()!r} is not scope=rate")
        parse_rate(rate)
        rates[scope.strip()] = rate.strip()
    return rates
