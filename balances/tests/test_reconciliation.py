"""The balances page: node vs PSP and the difference per currency and PSP, with the last sync time
(issue 19, item 6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from balances import reconciliation, selectors, services
from balances.models import PspBalance
from provision.testing import admin_client

pytestmark = pytest.mark.django_db


def sync(psp: str, total: str, currency: str = "NGN") -> None:
    seq = selectors.ledger_seqs(currencies=[currency])[currency]
    services.balance_sync_psp(
        psp=psp, currency=currency, total=Decimal(total), available=Decimal(total), ledger_seq_at_read=seq
    )


def line(currency: str = "NGN") -> reconciliation.CurrencyLine:
    return next(x for x in reconciliation.balance_reconciliation() if x.currency == currency)


def test_a_currency_no_psp_has_reported_has_no_difference_yet(settings: Any) -> None:
    settings.CURRENCIES = ["NGN", "KES"]
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="funds")

    result = line()

    assert (result.node_total, result.expected, result.difference, result.last_sync_at) == (
        Decimal("5000"),
        None,
        None,
        None,
    )
    assert [x.currency for x in reconciliation.balance_reconciliation()] == ["KES", "NGN"]


def test_a_sync_shows_the_difference_until_staff_book_it_and_then_node_and_psp_agree() -> None:
    user = User.objects.create_user(username="paula", password="pw", is_staff=True)
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="funds")
    sync("lenco", "8000")

    before = line()
    services.balance_drift_book(
        currency="NGN", expected=Decimal("3000"), reason="top-up at Lenco", actor=user
    )
    after = line()

    assert (before.node_total, before.reported_total, before.difference) == (
        Decimal("5000"),
        Decimal("8000"),
        Decimal("-3000"),
    )
    assert (after.node_total, after.reported_total, after.difference) == (
        Decimal("8000"),
        Decimal("8000"),
        Decimal("0"),
    )
    assert after.last_sync_at == PspBalance.objects.get().snapshot_at


def test_the_difference_is_minus_the_drift_the_balances_list_shows() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="funds")
    sync("lenco", "8000")
    services.balance_adjust(currency="NGN", delta=Decimal("-300"), reason="bank charge")

    drift = selectors.balance_drift(currency="NGN")

    assert drift is not None
    assert line().difference == -drift.amount


def test_movements_after_the_reading_are_expected_per_psp() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("10000"), reason="funds")
    sync("lenco", "8000")
    sync("paystack", "2000")
    services.balance_adjust(currency="NGN", delta=Decimal("-300"), reason="bank charge")  # no PSP

    result = line()

    assert [(p.psp, p.reported_total, p.moved_since, p.expected_now) for p in result.psps] == [
        ("lenco", Decimal("8000"), Decimal("0"), Decimal("8000")),
        ("paystack", Decimal("2000"), Decimal("0"), Decimal("2000")),
    ]
    assert (result.moved_elsewhere, result.expected, result.node_total, result.difference) == (
        Decimal("-300"),
        Decimal("9700"),
        Decimal("9700"),
        Decimal("0"),
    )


def test_a_psp_figure_the_book_does_not_match_shows_as_the_difference() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("8000"), reason="funds")
    sync("lenco", "7250")

    result = line()

    assert (result.node_total, result.expected, result.difference) == (
        Decimal("8000"),
        Decimal("7250"),
        Decimal("750"),
    )


def test_the_balances_page_shows_each_currency_and_psp_with_the_difference_and_the_sync_time() -> None:
    user = User.objects.create_user(username="vera", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    services.balance_credit(currency="NGN", amount=Decimal("8000"), reason="funds")
    sync("lenco", "7250")

    page = admin_client(user).get("/admin/balances/balance/reconciliation/").content.decode()

    assert 'data-psp="lenco"' in page
    assert "8,000.00 NGN" in page
    assert "7,250.00 NGN" in page
    assert "750.00 NGN" in page
    assert "The node's book and the PSPs disagree for NGN" in page
    assert PspBalance.objects.get().snapshot_at.strftime("%Y-%m-%d %H:%M:%S UTC") in page


def test_staff_without_the_psp_readings_permission_are_refused() -> None:
    user = User.objects.create_user(username="nobody", password="pw", is_staff=True)

    response = admin_client(user).get("/admin/balances/balance/reconciliation/")

    assert response.status_code == 403
