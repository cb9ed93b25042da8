"""CSV exports of orders, transfers and ledger entries: the list's filters, a date range, streamed, safe to
open in a spreadsheet (issue 19, item 6)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.http import StreamingHttpResponse
from django.test import Client

from balances import services as balance_services
from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from provision.csv_export import csv_cell
from provision.testing import admin_client
from psp.tests.factories import TransferFactory

pytestmark = pytest.mark.django_db

NOV_2 = datetime(2026, 11, 2, 10, 30, 5, tzinfo=UTC)
DEC_2 = datetime(2026, 12, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def viewer() -> Client:
    user = User.objects.create_user(username="vera", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    return admin_client(user)


def order(status: str, received_at: datetime, **fields: Any) -> Order:
    made = OrderFactory.create(received_at=received_at, **fields)
    Order.objects.filter(pk=made.pk).update(status=status)
    made.refresh_from_db()
    return made


def rows(response: Any) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = response.getvalue().decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+2348012345678", "'+2348012345678"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\tcmd", "'\tcmd"),
        ("Adébáyọ̀ Ọlá", "Adébáyọ̀ Ọlá"),
        (Decimal("-2500.00"), "-2500.00"),
        (None, ""),
        (True, "yes"),
        (datetime(2026, 12, 3, 14, 1, 7, 123456, tzinfo=UTC), "2026-12-03T14:01:07+00:00"),
        (date(2026, 12, 3), "2026-12-03"),
    ],
)
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_quoted_and_our_numbers_stay_numbers(
    value: object, expected: str
) -> None:
    assert csv_cell(value) == expected


def test_order_export_has_the_lists_filters_and_the_date_range(viewer: Client) -> None:
    held = order(OrderStatus.HELD, NOV_2, amount=Decimal("40000"), account_name="=cmd|' /C calc'!A0")
    order(OrderStatus.CANCELLED, NOV_2)  # filtered out by status
    order(OrderStatus.HELD, DEC_2)  # outside the range

    response = viewer.get(
        "/admin/orders/order/export/", {"status__exact": "held", "start": "2026-11-01", "end": "2026-11-30"}
    )

    exported = rows(response)
    assert response["Content-Disposition"] == 'attachment; filename="orders-20261101-20261130.csv"'
    assert [row["order_id"] for row in exported] == [held.order_id]
    assert exported[0]["amount"] == "40000.00"
    assert exported[0]["currency"] == "NGN"
    assert exported[0]["account"] == "******6789"
    assert exported[0]["account_name"] == "'=cmd|' /C calc'!A0"
    assert exported[0]["received_at"] == "2026-11-02T10:30:05+00:00"


def test_order_export_honours_the_lists_search(viewer: Client) -> None:
    wanted = order(OrderStatus.HELD, NOV_2, order_id="5f8a3c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b")
    order(OrderStatus.HELD, NOV_2)

    response = viewer.get(
        "/admin/orders/order/export/", {"q": "5f8a3c1e-2b4d", "start": "2026-11-01", "end": "2026-11-30"}
    )

    assert [row["order_id"] for row in rows(response)] == [wanted.order_id]


def test_the_range_days_are_the_node_time_zones_days(viewer: Client, settings: Any) -> None:
    settings.TIME_ZONE = "Africa/Lagos"  # UTC+1
    late = order(OrderStatus.HELD, datetime(2026, 11, 30, 23, 30, tzinfo=UTC))  # 1 December in Lagos
    inside = order(OrderStatus.HELD, datetime(2026, 10, 31, 23, 30, tzinfo=UTC))  # 1 November in Lagos

    response = viewer.get("/admin/orders/order/export/", {"start": "2026-11-01", "end": "2026-11-30"})

    assert [row["order_id"] for row in rows(response)] == [inside.order_id]
    assert late.order_id not in str(response)


def test_without_a_range_the_export_page_asks_for_one_and_names_the_filters(viewer: Client) -> None:
    order(OrderStatus.HELD, NOV_2)

    response = viewer.get("/admin/orders/order/export/", {"status__exact": "held"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "status__exact = held" in page
    assert '<input type="hidden" name="status__exact" value="held">' in page
    assert 'name="start"' in page


def test_an_invalid_range_is_refused_with_the_form(viewer: Client) -> None:
    response = viewer.get("/admin/orders/order/export/", {"start": "2026-11-30", "end": "2026-11-01"})

    assert response.status_code == 200
    assert "The first day comes after the last day." in response.content.decode()


def test_a_filter_the_list_refuses_is_refused(viewer: Client) -> None:
    response = viewer.get("/admin/orders/order/export/", {"no_such_field": "1"})

    assert response.status_code == 400


def test_the_list_links_its_export_with_its_filters(viewer: Client) -> None:
    page = viewer.get("/admin/orders/order/", {"status__exact": "held"}).content.decode()

    assert 'href="/admin/orders/order/export/?status__exact=held"' in page


def test_transfer_export_has_amount_and_fee_per_currency(viewer: Client) -> None:
    made = TransferFactory.create(
        order=order(OrderStatus.PAID, NOV_2, currency="UGX", amount=Decimal("150000"))
    )
    TransferFactory.create(psp="lenco")

    response = viewer.get(
        "/admin/psp/transfer/export/", {"psp__exact": "sandbox", "start": "2000-01-01", "end": "2100-12-31"}
    )

    exported = rows(response)
    assert [(r["reference"], r["amount"], r["fee"], r["currency"]) for r in exported] == [
        (made.reference, "150000", "10", "UGX")
    ]


def test_ledger_export_has_signed_deltas_as_numbers(viewer: Client) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="top-up")
    balance_services.balance_adjust(currency="NGN", delta=Decimal("-2500"), reason="-fee=1")
    balance_services.balance_credit(currency="KES", amount=Decimal("700"), reason="top-up")

    response = viewer.get(
        "/admin/balances/ledgerentry/export/",
        {"balance__currency__exact": "NGN", "start": "2000-01-01", "end": "2100-12-31"},
    )

    exported = rows(response)
    assert [(r["kind"], r["amount"], r["total_delta"], r["reason"]) for r in exported] == [
        ("ADJUST", "2500.00", "-2500.00", "'-fee=1"),
        ("CREDIT", "100000.00", "100000.00", "top-up"),
    ]


def test_export_reads_in_chunks_with_a_fixed_number_of_queries(
    viewer: Client, django_assert_max_num_queries: Any
) -> None:
    for _ in range(30):
        order(OrderStatus.HELD, NOV_2)

    with django_assert_max_num_queries(8):
        response = viewer.get("/admin/orders/order/export/", {"start": "2026-11-01", "end": "2026-11-30"})
        exported = rows(response)

    assert len(exported) == 30
