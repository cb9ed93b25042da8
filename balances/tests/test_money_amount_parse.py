"""balances.money.amount_parse: the one rule for amounts that come from outside."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances import money


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3750", Decimal("3750")),
        ("0.0001", Decimal("0.0001")),
        (3750, Decimal("3750")),
        (Decimal("736.155"), Decimal("736.155")),
        (Decimal("1E+3"), Decimal("1000")),  # a JSON number written 1e3: its value, in plain form
        ("99999999999.9999", money.MAX_AMOUNT),
    ],
)
def test_amount_parse_keeps_the_exact_value(value: object, expected: Decimal) -> None:
    amount = money.amount_parse(value)

    assert amount == expected
    assert str(amount) == str(expected)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, money.AmountRefused),
        (1.5, money.AmountRefused),  # a float never: JSON numbers are parsed as Decimal
        (Decimal("NaN"), money.AmountRefused),
        (Decimal("Infinity"), money.AmountRefused),
        (None, money.AmountRefused),
        (0, money.AmountRefused),
        (Decimal("-1"), money.AmountRefused),
        ("\uff15", money.AmountRefused),
        (Decimal("0.00001"), money.AmountTooPrecise),
        ("5000.00000", money.AmountTooPrecise),
        (10**11, money.AmountTooLarge),
        (Decimal("1e400"), money.AmountTooLarge),
    ],
)
def test_amount_parse_refuses(value: object, error: type[money.AmountRefused]) -> None:
    with pytest.raises(error) as raised:
        money.amount_parse(value)

    assert type(raised.value) is error
