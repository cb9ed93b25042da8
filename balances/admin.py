"""Balances and the ledger are read-only in admin: changes go through services (``manage.py balances``), and
the one change made here, booking the drift from the PSPs' readings, is an action with a reason."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from balances import selectors, services
from balances.models import Balance, BalanceAlert, LedgerEntry, PspBalance
from provision.admin_base import ReadOnlyAdmin
from provision.errors import ApplicationError


class BookDriftForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        required=True,
        help_text="What explains the difference (a fee, a deposit, a payout made outside the node). "
        "Kept on the ledger entry.",
    )


def _drift_display(amount: Decimal | None) -> str:
    if amount is None:
        return "—"
    return format_html('<b class="{}">{}</b>', "ops-bad" if amount else "ops-good", f"{amount:+,}")


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = (
        "currency",
        "total",
        "reserved",
        "available_display",
        "psp_figure",
        "drift_display",
        "updated_at",
    )
    actions = ("book_drift",)

    def has_book_drift_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("balances.book_drift"))

    @admin.display(description="Available")
    def available_display(self, obj: Balance) -> str:
        threshold = selectors.threshold_for(currency=obj.currency)
        low = threshold is not None and obj.available < threshold
        return format_html('<b class="{}">{}</b>', "ops-bad" if low else "ops-good", obj.available)

    @admin.display(description="PSPs say")
    def psp_figure(self, obj: Balance) -> str:
        drift = selectors.balance_drift(currency=obj.currency)
        return "—" if drift is None else f"{drift.expected_total:,}"

    @admin.display(description="Drift (PSPs minus ledger)")
    def drift_display(self, obj: Balance) -> str:
        drift = selectors.balance_drift(currency=obj.currency)
        return _drift_display(None if drift is None else drift.amount)

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


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "created_at",
        "balance",
        "kind",
        "amount",
        "total_delta",
        "reserved_delta",
        "order",
        "actor",
        "psp",
        "reason",
    )
    list_filter = ("kind", "balance__currency")
    list_select_related = ("balance", "order", "actor")
    search_fields = ("order__order_id", "reason")


@admin.register(PspBalance)
class PspBalanceAdmin(ReadOnlyAdmin):
    list_display = ("psp", "currency", "total", "available", "status", "snapshot_at", "drift_at_read")

    @admin.display(description="Currency drift when read", ordering="drift")
    def drift_at_read(self, obj: PspBalance) -> str:
        return _drift_display(obj.drift)


@admin.register(BalanceAlert)
class BalanceAlertAdmin(ReadOnlyAdmin):
    list_display = ("currency", "available", "threshold", "created_at", "resolved_at")
