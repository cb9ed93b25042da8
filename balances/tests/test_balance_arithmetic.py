"""Money arithmetic on balances is exact on every database (SQLite computes column arithmetic in floats)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances import selectors, services
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_reserving_and_releasing_odd_cents_returns_exactly_to_zero() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    orders = [
        OrderFactory.create(amount=amount) for amount in (Decimal("1.60"), Decimal("1.99"), Decimal("0.07"))
    ]
    for order in orders:
        services.balance_reserve(order=order)

    for order in orders:
        services.balance_release(order=order, reason="test")

    balance = selectors.balance_get(currency="NGN")
    assert (balance.total, balance.reserved) == (Decimal("100000"), Decimal("0"))
    assert services.balance_verify() == []
