"""Money helpers: one precision for every money column, quantised per currency where an amount is born."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 4

#: Significant digits every supported database gives back exactly. SQLite stores a decimal column as a
#: REAL whenever it can and keeps 15 significant digits (Django reads it back through a 15-digit
#: context); PostgreSQL's numeric(MONEY_MAX_DIGITS, MONEY_DECIMAL_PLACES) keeps all of them.
MONEY_EXACT_DIGITS: Final = min(MONEY_MAX_DIGITS, 15)
#: The largest amount accepted from outside: 11 integer digits and 4 decimals, 99999999999.9999.
#: ``999999999999999.9999`` fits numeric(20, 4) but SQLite would store 1000000000000000.0000.
MAX_AMOUNT: Final = Decimal(10) ** (MONEY_EXACT_DIGITS - MONEY_DECIMAL_PLACES) - Decimal(1).scaleb(
    -MONEY_DECIMAL_PLACES
)
# ASCII only: [0-9], unlike \d or Decimal(), which read fullwidth or Arabic-Indic digits (U+FF15,
# U+0665...) as 5, and "5_000", " 5000 " and "1e3" too.
_PLAIN_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class AmountRefused(ValueError):
    """An amount from outside that is not a positive plain decimal. ``code`` says which rule it broke."""

    code = "invalid"


class AmountTooPrecise(AmountRefused):
    code = "max_places"


class AmountTooLarge(AmountRefused):
    code = "max_value"


def amount_parse(value: object) -> Decimal:
    """A positive amount from untrusted input, exactly as given, or AmountRefused.

    A string must be a plain ASCII decimal: digits 0-9 and at most one ``.`` with digits on both sides; no
    sign, spaces, underscores, exponent or other scripts' digits. An ``int`` or a ``Decimal`` (a JSON
    number parsed with ``parse_float=Decimal``) is taken by its exact value. Either way at most
    MONEY_DECIMAL_PLACES decimals (AmountTooPrecise: more is refused, never rounded) and at most
    MAX_AMOUNT (AmountTooLarge).
    """
    if isinstance(value, str):
        if not _PLAIN_DECIMAL.fullmatch(value):
            raise AmountRefused(value[:40])
        amount = Decimal(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, Decimal) and value.is_finite():
        amount = value
    else:
        raise AmountRefused(type(value).__name__)
    if amount <= 0:
        raise AmountRefused(str(amount)[:40])
    if amount > MAX_AMOUNT:
        raise AmountTooLarge(str(amount)[:40])
    exponent = int(amount.as_tuple().exponent)  # an int: the amount is finite
    if exponent < -MONEY_DECIMAL_PLACES:
        raise AmountTooPrecise(str(amount)[:40])
    return amount.quantize(Decimal(1)) if exponent > 0 else amount  # 1E+3 (a JSON number) -> 1000


# ISO 4217 minor units for currencies that are not 2.
_EXPONENTS = {
    "XOF": 0,
    "XAF": 0,
    "UGX": 0,
    "RWF": 0,
    "KRW": 0,
    "JPY": 0,
    "BIF": 0,
    "GNF": 0,
    "KWD": 3,
    "BHD": 3,
}


def currency_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` to the currency's minor unit, half to even (the aggregator's rule)."""
    return amount.quantize(Decimal(1).scaleb(-currency_exponent(currency)), rounding=ROUND_HALF_EVEN)


def to_wire(amount: Decimal) -> str:
    """Decimal text without exponent or trailing zeros, as the aggregator writes it (``"3750"``)."""
    text = format(amount.normalize(), "f")
    return "0" if text in {"-0", ""} else text
