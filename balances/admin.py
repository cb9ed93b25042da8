"""Balances and the ledger are read-only in admin: changes go through services (``manage.py balances``)."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import URLPattern, path
from django.utils.html import format_html

from balances import admin_views, exports, selectors
from balances.models import Balance, BalanceAlert, LedgerEntry, PspBalance
from balances.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from provision import formatting
from provision.admin_base import ReadOnlyAdmin
from provision.csv_export import CsvExportMixin

MONEY: DecimalField = DecimalField(  # type: ignore[type-arg,unused-ignore]
    max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES
)


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("currency", "total_display", "reserved_display", "available_display", "updated_at")

    def get_urls(self) -> list[Any]:
        own: list[URLPattern] = [
            path(
                "reconciliation/",
                self.admin_site.admin_view(partial(admin_views.reconciliation_view, self)),
                name="balances_balance_reconciliation",
            )
        ]
        return own + super().get_urls()

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj: Balance) -> str:
        return formatting.money(obj.total, obj.currency)

    @admin.display(description="Reserved", ordering="reserved")
    def reserved_display(self, obj: Balance) -> str:
        return formatting.money(obj.reserved, obj.currency)

    @admin.display(description="Available")
    def available_display(self, obj: Balance) -> str:
        threshold = selectors.threshold_for(currency=obj.currency)
        low = threshold is not None and obj.available < threshold
        return format_html(
            '<b class="{}">{}</b>',
            "ops-bad" if low else "ops-good",
            formatting.money(obj.available, obj.currency),
        )


def _later_sum(field: str) -> Subquery:
    """The sum of ``field`` over the entries of the same balance written after this one."""
    later = (
        LedgerEntry.objects.filter(balance=OuterRef("balance"), pk__gt=OuterRef("pk"))
        .order_by()
        .values("balance")
        .annotate(moved=Sum(field))
        .values("moved")
    )
    return Subquery(later, output_field=MONEY)


def _signed(amount: Decimal, currency: str) -> str:
    return ("+" if amount > 0 else "") + formatting.money_amount(amount, currency)


def with_running_balance(queryset: QuerySet[LedgerEntry]) -> QuerySet[LedgerEntry]:
    """Each entry with ``total_after`` and ``reserved_after``: its balance right after it was written."""
    zero = Value(Decimal("0"), output_field=MONEY)
    return queryset.annotate(
        total_after=ExpressionWrapper(
            F("balance__total") - Coalesce(_later_sum("total_delta"), zero), output_field=MONEY
        ),
        reserved_after=ExpressionWrapper(
            F("balance__reserved") - Coalesce(_later_sum("reserved_delta"), zero), output_field=MONEY
        ),
    )


class LedgerChangeList(ChangeList):
    """The list's page gets the running balance; the CSV export of the same filters does not (on a year of
    entries each row's sum over the later ones would be quadratic)."""

    def get_results(self, request: HttpRequest) -> None:
        self.queryset = with_running_balance(self.queryset)
        super().get_results(request)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(CsvExportMixin, ReadOnlyAdmin):
    """Newest first, each entry with the balance right after it.

    The running balance is the balance now minus what the entries written since moved (the ledger sums to
    the balance: ``manage.py balances verify``), computed in SQL from the entries after each row, so it is
    right whatever the list's filters hide, and cheap on the first pages, where ops look.
    """

    list_display = (
        "pk",
        "created_at",
        "currency",
        "kind",
        "amount_money",
        "total_delta_display",
        "reserved_delta_display",
        "balance_after",
        "available_after",
        "order",
        "psp",
        "actor",
        "reason",
    )
    list_filter = ("kind", "balance__currency", "psp")
    list_select_related = ("balance", "order", "actor")
    search_fields = ("order__order_id", "reason")
    ordering = ("-pk",)
    export_columns = exports.LEDGER_COLUMNS
    export_select_related = ("balance", "order", "actor")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LedgerChangeList

    @admin.display(description="Currency", ordering="balance__currency")
    def currency(self, obj: LedgerEntry) -> str:
        return obj.balance.currency

    @admin.display(description="Amount", ordering="amount")
    def amount_money(self, obj: LedgerEntry) -> str:
        return formatting.money_amount(obj.amount, obj.balance.currency)

    @admin.display(description="Total Δ")
    def total_delta_display(self, obj: LedgerEntry) -> str:
        return _signed(obj.total_delta, obj.balance.currency)

    @admin.display(description="Reserved Δ")
    def reserved_delta_display(self, obj: LedgerEntry) -> str:
        return _signed(obj.reserved_delta, obj.balance.currency)

    @admin.display(description="Balance after")
    def balance_after(self, obj: LedgerEntry) -> str:
        return formatting.money(getattr(obj, "total_after", None), obj.balance.currency)

    @admin.display(description="Available after")
    def available_after(self, obj: LedgerEntry) -> str:
        total, reserved = getattr(obj, "total_after", None), getattr(obj, "reserved_after", None)
        if total is None or reserved is None:
            return formatting.EMPTY
        return formatting.money(total - reserved, obj.balance.currency)


@admin.register(PspBalance)
class PspBalanceAdmin(ReadOnlyAdmin):
    list_display = ("psp", "currency", "total_display", "available_display", "status", "snapshot_at")

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj: PspBalance) -> str:
        return formatting.money(obj.total, obj.currency)

    @admin.display(description="Available", ordering="available")
    def available_display(self, obj: PspBalance) -> str:
        return formatting.money(obj.available, obj.currency)


@admin.register(BalanceAlert)
class BalanceAlertAdmin(ReadOnlyAdmin):
    list_display = ("currency", "available_display", "threshold_display", "created_at", "resolved_at")

    @admin.display(description="Available", ordering="available")
    def available_display(self, obj: BalanceAlert) -> str:
        return formatting.money(obj.available, obj.currency)

    @admin.display(description="Threshold", ordering="threshold")
    def threshold_display(self, obj: BalanceAlert) -> str:
        return formatting.money(obj.threshold, obj.currency)
