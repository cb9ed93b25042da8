"""Ops read times and money without mistakes (issue 19, item 5): the index, the order list and page, the
ledger."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from balances import services as balance_services
from balances.models import LedgerEntry
from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from provision.testing import admin_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return admin_client(User.objects.create_superuser(username="root", password="pw"))


def in_status(status: str, **fields: object) -> Order:
    order = OrderFactory.create(**fields)
    Order.objects.filter(pk=order.pk).update(status=status, **fields)
    order.refresh_from_db()
    return order


def text(response: object) -> str:
    return re.sub(r"\s+", " ", response.content.decode())  # type: ignore[attr-defined]


def test_index_writes_amounts_with_separators_and_countdowns_in_seconds(client: Client) -> None:
    now = timezone.now()
    in_status(OrderStatus.HELD, amount=Decimal("40000"), hold_until=now + timedelta(seconds=30))
    in_status(OrderStatus.HELD, amount=Decimal("1250.5"), hold_until=now - timedelta(minutes=3))

    page = text(client.get("/admin/"))

    assert "40,000.00 NGN" in page
    assert "40000.0000" not in page
    assert re.search(r"(29|30) s left", page)
    assert re.search(r"overdue by 3 min 0\d s", page)
    assert "0 minutes" not in page


def test_order_list_shows_money_per_currency_exponent_and_overdue_holds(client: Client) -> None:
    in_status(OrderStatus.HELD, amount=Decimal("1500000"), currency="UGX", hold_until=timezone.now())
    in_status(OrderStatus.CANCELLED, amount=Decimal("40000"))

    page = text(client.get("/admin/orders/order/"))

    assert "1,500,000 UGX" in page
    assert "40,000.00 NGN" in page
    assert "overdue" in page


def test_each_final_or_attention_state_has_its_own_colour_class(client: Client) -> None:
    for status in (
        OrderStatus.CANCELLED,
        OrderStatus.DECLINED,
        OrderStatus.EXPIRED,
        OrderStatus.NEEDS_REVIEW,
    ):
        in_status(status)
    css = open("provision/static/provision/admin.css").read()

    page = client.get("/admin/orders/order/").content.decode()

    colours = {}
    for name in ("cancelled", "declined", "expired", "needs_review"):
        assert f"status-badge status-{name}" in page
        rule = re.search(r"\.status-" + name + r" \{ color: (#\w+); background: (#\w+); \}", css)
        assert rule is not None, name
        colours[name] = rule.groups()
    assert len(set(colours.values())) == 4


def test_order_page_leads_with_status_amount_recipient_and_folds_the_crypto_fields(client: Client) -> None:
    order = in_status(
        OrderStatus.HELD, amount=Decimal("40000"), hold_until=timezone.now() + timedelta(minutes=5)
    )

    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    positions = [
        page.index(marker)
        for marker in ('class="status-badge status-held"', "40,000.00 NGN", "Adébáyọ̀ Ọlá", "Token amount")
    ]
    assert positions == sorted(positions)
    folded = page[page.index("Aggregator and crypto details") - 400 :]
    assert "<details" in folded[:500]
    assert page.index("Token amount") > page.index("<details")


def test_the_action_page_writes_the_amount_and_back_goes_to_the_order(client: Client) -> None:
    order = in_status(OrderStatus.HELD, hold_until=timezone.now() + timedelta(minutes=5))

    page = client.get(f"/admin/orders/order/{order.pk}/do/cancel_orders/").content.decode()

    assert f'href="/admin/orders/order/{order.pk}/change/" class="confirm-back">Back</a>' in page
    assert "3,750.00 NGN" in page


def test_searching_by_the_short_id_the_list_shows_finds_the_order(client: Client) -> None:
    order = OrderFactory.create(order_id="5f8a3c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b")
    OrderFactory.create(order_id="7a000000-0000-4000-8000-000000000000")

    found = [
        client.get("/admin/orders/order/", {"q": term}).context["cl"].result_count
        for term in ("5f8a3c1e-2b4d", "5f8a3c1e-2b4d…", order.order_id)
    ]

    assert found == [1, 1, 1]


def test_ledger_shows_the_running_balance_after_each_entry_newest_first(client: Client) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="top-up")
    balance_services.balance_adjust(currency="NGN", delta=Decimal("-2500"), reason="fee")
    balance_services.balance_credit(currency="KES", amount=Decimal("700"), reason="top-up")
    balance_services.balance_credit(currency="NGN", amount=Decimal("40000"), reason="top-up")

    response = client.get("/admin/balances/ledgerentry/")

    rows = [
        (entry.pk, entry.balance.currency, entry.total_after) for entry in response.context["cl"].result_list
    ]
    pks = list(LedgerEntry.objects.order_by("-pk").values_list("pk", flat=True))
    assert rows == [
        (pks[0], "NGN", Decimal("137500")),
        (pks[1], "KES", Decimal("700")),
        (pks[2], "NGN", Decimal("97500")),
        (pks[3], "NGN", Decimal("100000")),
    ]
    assert "137,500.00 NGN" in response.content.decode()


def test_ledger_running_balance_ignores_the_lists_filters(client: Client) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="top-up")
    balance_services.balance_adjust(currency="NGN", delta=Decimal("-2500"), reason="fee")

    response = client.get("/admin/balances/ledgerentry/", {"kind__exact": "CREDIT"})

    assert [entry.total_after for entry in response.context["cl"].result_list] == [Decimal("100000")]


def test_ledger_running_balance_on_a_later_page_counts_the_newer_pages(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    for amount in range(1, 131):  # 130 credits of 1..130 NGN: two pages of 100
        balance_services.balance_credit(currency="NGN", amount=Decimal(amount), reason="top-up")

    # 10 for the page, 7 for the health strip every admin page carries (provision.health_strip).
    with django_assert_max_num_queries(10 + 7):
        response = client.get("/admin/balances/ledgerentry/", {"p": "2"})

    after = [entry.total_after for entry in response.context["cl"].result_list]
    assert after == [Decimal(n * (n + 1) // 2) for n in range(30, 0, -1)]
