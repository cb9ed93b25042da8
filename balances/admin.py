"""Balances and the ledger are read-only in admin: changes go through services (``manage.py balances``), and
the one change made here, booking the drift from the PSPs' readings, is an action with a reason."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Case, IntegerField, QuerySet, Sum, Value, When
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from balances import admin_views, exports, selectors, services
from balances.models import Balance, BalanceAlert, LedgerEntry, PspBalance
from provision import formatting
from provision.admin_base import ReadOnlyAdmin
from provision.csv_export import CsvExportMixin
from provision.errors import ApplicationError


class BookDriftForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        required=True,
        help_text="What explains the difference (a fee, a deposit, a payout made outside the node). "
        "Kept on the ledger entry.",
    )


def _drift_display(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return formatting.EMPTY
    signed = ("+" if amount > 0 else "") + formatting.money(amount, currency)
    return format_html('<b class="{}">{}</b>', "ops-bad" if amount else "ops-good", signed)


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = (
        "currency",
        "total_display",
        "reserved_display",
        "available_display",
        "psp_figure",
        "drift_display",
        "updated_at",
    )
    actions = ("book_drift",)

    def has_book_drift_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("balances.book_drift"))

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

    @admin.display(description="PSPs say")
    def psp_figure(self, obj: Balance) -> str:
        drift = selectors.balance_drift(currency=obj.currency)
        return "—" if drift is None else formatting.money(drift.expected_total, obj.currency)

    @admin.display(description="Drift (PSPs minus ledger)")
    def drift_display(self, obj: Balance) -> str:
        drift = selectors.balance_drift(currency=obj.currency)
        return _drift_display(None if drift is None else drift.amount, obj.currency)

    @admin.action(description="Book the drift into the ledger (match the PSPs)…", permissions=["book_drift"])
    def book_drift(self, request: HttpRequest, queryset: QuerySet[Balance]) -> HttpResponse | None:
        """Confirm with a reason, showing each currency's figures; book the drift each one was shown."""
        balances = list(queryset.order_by("currency"))
        form = BookDriftForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            actor = request.user
            if not isinstance(actor, AbstractBaseUser):  # admin views run for logged-in staff only
                return None
            for balance in balances:
                self._book(request, balance, actor=actor, reason=form.cleaned_data["reason"])
            return None
        rows = [(balance, selectors.balance_drift(currency=balance.currency)) for balance in balances]
        context = {
            **self.admin_site.each_context(request),
            "title": "Book the drift into the ledger",
            "rows": rows,
            "form": form,
            "action": "book_drift",
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/balances/balance/book_drift.html", context)

    def _book(self, request: HttpRequest, balance: Balance, *, actor: AbstractBaseUser, reason: str) -> None:
        try:
            expected = Decimal(request.POST.get(f"expected_{balance.currency}", ""))
        except InvalidOperation:
            self.message_user(request, f"{balance.currency}: no drift was shown; look again.", messages.ERROR)
            return
        try:
            entry = services.balance_drift_book(
                currency=balance.currency, expected=expected, reason=reason, actor=actor
            )
        except ApplicationError as exc:
            self.message_user(request, f"{balance.currency}: {exc.message}", messages.ERROR)
            return
        self.log_change(
            request, balance, f"Booked the drift {entry.total_delta:+} {balance.currency}: {reason}"
        )
        self.message_user(
            request,
            f"{balance.currency}: booked {entry.total_delta:+,} (ledger entry #{entry.pk}).",
            messages.SUCCESS,
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
    list_display = (
        "psp",
        "currency",
        "total_display",
        "available_display",
        "status",
        "snapshot_at",
        "drift_at_read",
    )

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj: PspBalance) -> str:
        return formatting.money(obj.total, obj.currency)

    @admin.display(description="Available", ordering="available")
    def available_display(self, obj: PspBalance) -> str:
        return formatting.money(obj.available, obj.currency)

    @admin.display(description="Currency drift when read", ordering="drift")
    def drift_at_read(self, obj: PspBalance) -> str:
        return _drift_display(obj.drift, obj.currency)


@admin.register(BalanceAlert)
class BalanceAlertAdmin(ReadOnlyAdmin):
    list_display = ("currency", "available_display", "threshold_display", "created_at", "resolved_at")

    @admin.display(description="Available", ordering="available")
    def available_display(self, obj: BalanceAlert) -> str:
        return formatting.money(obj.available, obj.currency)

    @admin.display(description="Threshold", ordering="threshold")
    def threshold_display(self, obj: BalanceAlert) -> str:
        return formatting.money(obj.threshold, obj.currency)
