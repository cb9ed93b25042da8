"""Money helpers: one precision for every money column, quantised per currency where an amount is born."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 4

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
