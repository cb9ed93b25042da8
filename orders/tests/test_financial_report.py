"""The financial report (seed 002): volume, count and fees by currency, PSP and day, in SQL, on screen and
as CSV (issue 19, item 6)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.http import StreamingHttpResponse

from orders import reports
from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from provision.testing import admin_client
from psp.models import TransferStatus
from psp.tests.factories import TransferFactory

pytestmark = pytest.mark.django_db

NOV_2 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
NOV_3 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def paid(
    amount: str, paid_at: datetime, *, currency: str = "NGN", psp: str = "sandbox", fee: str | None = "10"
) -> Order:
    order = OrderFactory.create(amount=Decimal(amount), currency=currency)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.FULFILLED, paid_at=paid_at, psp=psp)
    if psp != "manual":
        TransferFactory.create(order=order, psp=psp, fee=None if fee is None else Decimal(fee))
    return order


def report(**kwargs: Any) -> reports.FinancialReport:
    return reports.financial_report(start=date(2026, 11, 1), end=date(2026, 11, 30), **kwargs)


def test_volume_count_and_fees_by_day_currency_and_psp() -> None:
    paid("40000.5", NOV_2, fee="50.25")
    paid("10000", NOV_2, fee="25")
    paid("3000", NOV_3)
    paid("150000", NOV_2, currency="UGX", psp="lenco", fee="1500")
    paid("7000", NOV_2, psp="manual")

    result = report()

    assert [(r.day, r.currency, r.psp, r.count, r.volume, r.fees, r.fees_reported) for r in result.rows] == [
        (date(2026, 11, 2), "NGN", "manual", 1, Decimal("7000"), Decimal("0"), 0),
        (date(2026, 11, 2), "NGN", "sandbox", 2, Decimal("50000.5"), Decimal("75.25"), 2),
        (date(2026, 11, 2), "UGX", "lenco", 1, Decimal("150000"), Decimal("1500"), 1),
        (date(2026, 11, 3), "NGN", "sandbox", 1, Decimal("3000"), Decimal("10"), 1),
    ]
    assert [(r.currency, r.count, r.volume, r.fees) for r in result.currency_totals] == [
        ("NGN", 4, Decimal("60000.5"), Decimal("85.25")),
        ("UGX", 1, Decimal("150000"), Decimal("1500")),
    ]
    assert all(isinstance(r.volume, Decimal) and isinstance(r.fees, Decimal) for r in result.rows)


def test_only_standing_payouts_in_the_range_count() -> None:
    paid("1000", NOV_2)
    paid("2000", datetime(2026, 12, 1, 0, 0, tzinfo=UTC))  # after the range
    reversed_order = paid("4000", NOV_2)
    Order.objects.filter(pk=reversed_order.pk).update(status=OrderStatus.REVERSED)
    OrderFactory.create(amount=Decimal("8000"))  # received, never paid

    result = report()

    assert [(r.count, r.volume) for r in result.rows] == [(1, Decimal("1000"))]


def test_a_rejected_attempt_before_the_paying_one_is_not_counted_twice() -> None:
    order = paid("5000", NOV_2, fee="20")
    TransferFactory.create(
        order=order, attempt=2, psp="lenco", status=TransferStatus.REJECTED, fee=Decimal("99")
    )

    result = report()

    assert [(r.count, r.volume, r.fees) for r in result.rows] == [(1, Decimal("5000"), Decimal("20"))]


def test_filters_by_currency_and_psp() -> None:
    paid("1000", NOV_2)
    paid("2000", NOV_2, psp="lenco")
    paid("3000", NOV_2, currency="KES")

    result = report(currency="NGN", psp="lenco")

    assert [(r.currency, r.psp, r.volume) for r in result.rows] == [("NGN", "lenco", Decimal("2000"))]


def test_days_are_the_node_time_zones_days(settings: Any) -> None:
    settings.TIME_ZONE = "Africa/Nairobi"  # UTC+3
    paid("1000", datetime(2026, 11, 2, 22, 0, tzinfo=UTC))  # 3 November in Nairobi

    result = report()

    assert [r.day for r in result.rows] == [date(2026, 11, 3)]


def test_the_report_is_three_queries_however_many_payouts(django_assert_num_queries: Any) -> None:
    for day in range(1, 20):
        paid("1000", datetime(2026, 11, day, 12, tzinfo=UTC))

    with django_assert_num_queries(3):
        result = report()

    assert len(result.rows) == 19


def test_the_report_page_shows_the_figures_and_gives_them_as_csv() -> None:
    user = User.objects.create_user(username="vera", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    client = admin_client(user)
    paid("40000", NOV_2, fee="50")
    query = {"start": "2026-11-01", "end": "2026-11-30"}

    page = client.get("/admin/orders/order/report/", query).content.decode()
    response = client.get("/admin/orders/order/report/", {**query, "format": "csv"})

    assert "40,000.00 NGN" in page
    assert "50.00 NGN" in page
    assert "format=csv" in page
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert isinstance(response, StreamingHttpResponse)
    body = response.getvalue().decode()
    assert list(csv.reader(io.StringIO(body))) == [
        ["day", "currency", "psp", "count", "volume", "fees", "fees_reported"],
        ["2026-11-02", "NGN", "sandbox", "1", "40000.00", "50.00", "1"],
    ]


def test_the_report_page_defaults_to_the_last_seven_days() -> None:
    client = admin_client(User.objects.create_superuser(username="root", password="pw"))

    response = client.get("/admin/orders/order/report/")

    assert response.status_code == 200
    assert response.context["report"] is not None
    assert (response.context["report"].end - response.context["report"].start).days == 6
