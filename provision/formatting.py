"""How the admin writes money, times and countdowns: one function each, used by every page and list.

* Money: thousands separators and the currency's own ISO 4217 exponent (``40,000.00 NGN``,
  ``1,500,000 UGX``), never the database's four decimal places. Shown as-is when it has more decimals
  than the currency (a sub-unit remainder must stay visible, not be rounded away on screen).
* Times: to the second, in the node's time zone, with the zone named (``2026-12-03 14:01:07 UTC``).
* Countdowns: seconds under a minute, and "overdue" once the time has passed (never "0 minutes").

Plain functions here; ``provision/templatetags/ops_format.py`` makes them template filters.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from balances.money import currency_exponent

EMPTY = "—"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def money_amount(amount: Decimal | int | None, currency: str) -> str:
    """``amount`` with thousands separators and ``currency``'s minor-unit exponent, without the code."""
    if amount is None:
        return EMPTY
    value = Decimal(amount)
    places = currency_exponent(currency)
    exponent = int(value.normalize().as_tuple().exponent) if value else 0
    if -exponent > places:  # more decimals than the currency has: show them all, never round on screen
        places = -exponent
    return f"{value:,.{places}f}"


def money_plain(amount: Decimal | None, currency: str) -> Decimal | None:
    """``amount`` at the currency's exponent (more decimals kept when it has them): for files, not screens."""
    if amount is None:
        return None
    value = Decimal(amount)
    places = currency_exponent(currency)
    exponent = int(value.normalize().as_tuple().exponent) if value else 0
    return value.quantize(Decimal(1).scaleb(-max(places, -exponent)))


def money(amount: Decimal | int | None, currency: str) -> str:
    """``40,000.00 NGN``: the amount as ``money_amount`` writes it, then the currency code."""
    if amount is None:
        return EMPTY
    return f"{money_amount(amount, currency)} {currency}"


def when(moment: datetime | None) -> str:
    """``2026-12-03 14:01:07 UTC``: to the second, in the node's time zone, the zone named."""
    if moment is None:
        return EMPTY
    return timezone.localtime(moment).strftime(TIME_FORMAT)


def duration(seconds: int) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 07 min``, ``3 d 04 h``: seconds under a minute, two units above."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600:02d} h"


def countdown(until: datetime | None, *, now: datetime | None = None) -> str:
    """Time left until ``until`` (``45 s left``), or how long ago it passed (``overdue by 12 s``)."""
    if until is None:
        return EMPTY
    seconds = int((until - (now or timezone.now())).total_seconds())
    if seconds <= 0:
        return f"overdue by {duration(-seconds)}" if seconds < 0 else "overdue"
    return f"{duration(seconds)} left"


def age(since: datetime | None, *, now: datetime | None = None) -> str:
    """How long ago ``since`` was (``45 s ago``)."""
    if since is None:
        return EMPTY
    return f"{duration(max(0, int(((now or timezone.now()) - since).total_seconds())))} ago"
