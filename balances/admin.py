"""Balances and the ledger are read-only in admin: changes go through services (``manage.py balances``)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Case, IntegerField, Sum, Value, When
from django.http import HttpRequest
from django.urls import URLPattern, path
from django.utils.html import format_html

from balances import admin_views, exports, selectors
from balances.models import Balance, BalanceAlert, LedgerEntry, PspBalance
from provision import formatting
from provision.admin_base import ReadOnlyAdmin
from provision.csv_export import CsvExportMixin


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


def running_balance_attach(entries: Sequence[LedgerEntry]) -> None:
    """Set ``total_after`` and ``reserved_after`` on each entry: its balance right after it was written.

    The balance now less what the entries written after it moved. One query, whatever the page: the
    entries from the page's oldest one on, summed per balance in buckets cut at the page's entries (so a
    filtered page, whose entries are not neighbours, still counts every entry between them), joined to
    the balance row in the same statement (the balance and the entries are read at one moment). It reads
    only the entries newer than the page: cheap on the first pages, where ops look.
    """
    if not entries:
        return
    pks = sorted({entry.pk for entry in entries}, reverse=True)
    bucket = Case(
        *(When(pk__gt=pk, then=Value(i)) for i, pk in enumerate(pks)),
        default=Value(len(pks)),
        output_field=IntegerField(),
    )
    sums = (
        LedgerEntry.objects.filter(pk__gte=pks[-1], balance_id__in={entry.balance_id for entry in entries})
        .annotate(bucket=bucket)
        .values("balance_id", "balance__total", "balance__reserved", "bucket")
        .annotate(total_moved=Sum("total_delta"), reserved_moved=Sum("reserved_delta"))
        .order_by()
    )
    moved: dict[tuple[int, int], tuple[Decimal, Decimal]] = {}
    now: dict[int, tuple[Decimal, Decimal]] = {}
    for row in sums:
        moved[(row["balance_id"], row["bucket"])] = (row["total_moved"], row["reserved_moved"])
        now[row["balance_id"]] = (row["balance__total"], row["balance__reserved"])
    for entry in entries:
        total, reserved = now[entry.balance_id]
        for i in range(pks.index(entry.pk) + 1):  # bucket i: the entries after pks[i], up to pks[i - 1]
            total_moved, reserved_moved = moved.get((entry.balance_id, i), (Decimal("0"), Decimal("0")))
            total, reserved = total - total_moved, reserved - reserved_moved
        entry.total_after = total  # type: ignore[attr-defined]
        entry.reserved_after = reserved  # type: ignore[attr-defined]


def _signed(amount: Decimal, currency: str) -> str:
    return ("+" if amount > 0 else "") + formatting.money_amount(amount, currency)


class LedgerChangeList(ChangeList):
    """The list's page with the running balance of each entry (``running_balance_attach``)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        entries = list(self.result_list)
        running_balance_attach(entries)
        self.result_list = entries


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
