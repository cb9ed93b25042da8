"""The financial report (seed 002, "Financial Reporting"): payout volume, count and fees by day, currency
and PSP, for a date range, aggregated in SQL.

What counts: orders paid and still standing (status paid or fulfilled) whose ``paid_at`` falls in the
range, by the day of ``paid_at`` in the node's time zone. Volume is the sum of the order amounts; fees are
the PSP's fees on the order's succeeded transfer, as the PSP reported them (an order paid outside the node,
PSP ``manual``, has none; ``fees_reported`` says how many payouts the fee figure covers). A payout the PSP
reverses leaves the report once its order is reversed. Money stays ``Decimal`` and is never summed across
currencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Count, DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from balances.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from orders.models import Order, OrderStatus
from provision.csv_export import day_bounds
from psp.models import Transfer, TransferStatus

MONEY: DecimalField = DecimalField(  # type: ignore[type-arg,unused-ignore]
    max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES
)
REPORTED_STATES = (OrderStatus.PAID, OrderStatus.FULFILLED)


@dataclass(frozen=True)
class ReportRow:
    day: date | None  # None on a currency's total row
    currency: str
    psp: str
    count: int
    volume: Decimal
    fees: Decimal
    fees_reported: int


@dataclass(frozen=True)
class FinancialReport:
    start: date
    end: date
    rows: list[ReportRow]  # by day, currency, PSP
    totals: list[ReportRow]  # by currency and PSP over the range
    currency_totals: list[ReportRow]  # by currency over the range (psp "")


def _paid_orders(*, start: date, end: date, currency: str, psp: str) -> QuerySet[Order]:
    low, high = day_bounds(start, end)
    fee = Subquery(
        Transfer.objects.filter(order=OuterRef("pk"), status=TransferStatus.SUCCEEDED).values("fee")[:1],
        output_field=MONEY,
    )
    orders = Order.objects.filter(status__in=REPORTED_STATES, paid_at__gte=low, paid_at__lt=high)
    if currency:
        orders = orders.filter(currency=currency)
    if psp:
        orders = orders.filter(psp=psp)
    return orders.annotate(psp_fee=fee)


def _rows(orders: QuerySet[Order], *group: str) -> list[ReportRow]:
    zero = Value(Decimal("0"), output_field=MONEY)
    grouped = (
        orders.values(*group)
        .annotate(
            n=Count("pk"),
            volume=Sum("amount"),
            fees=Coalesce(Sum("psp_fee"), zero),
            fees_reported=Count("psp_fee"),
        )
        .order_by(*group)
    )
    return [
        ReportRow(
            day=row.get("day"),
            currency=row["currency"],
            psp=row.get("psp", ""),
            count=row["n"],
            volume=row["volume"],
            fees=row["fees"],
            fees_reported=row["fees_reported"],
        )
        for row in grouped
    ]


def financial_report(*, start: date, end: date, currency: str = "", psp: str = "") -> FinancialReport:
    """Volume, count and fees of the payouts made from ``start`` to ``end`` (both days included)."""
    orders = _paid_orders(start=start, end=end, currency=currency, psp=psp)
    by_day = orders.annotate(day=TruncDate("paid_at", tzinfo=timezone.get_current_timezone()))
    return FinancialReport(
        start=start,
        end=end,
        rows=_rows(by_day, "day", "currency", "psp"),
        totals=_rows(orders, "currency", "psp"),
        currency_totals=_rows(orders, "currency"),
    )
