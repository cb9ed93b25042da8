"""Balances and the ledger are read-only in admin: changes go through services (``manage.py balances``)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from balances import selectors
from balances.models import Balance, BalanceAlert, LedgerEntry, PspBalance
from provision.admin_base import ReadOnlyAdmin


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("currency", "total", "reserved", "available_display", "updated_at")

    @admin.display(description="Available")
    def available_display(self, obj: Balance) -> str:
        threshold = selectors.threshold_for(currency=obj.currency)
        low = threshold is not None and obj.available < threshold
        return format_html('<b class="{}">{}</b>', "ops-bad" if low else "ops-good", obj.available)


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
    )
    list_filter = ("kind", "balance__currency")
    list_select_related = ("balance", "order", "actor")
    search_fields = ("order__order_id", "reason")


@admin.register(PspBalance)
class PspBalanceAdmin(ReadOnlyAdmin):
    list_display = ("psp", "currency", "total", "available", "status", "snapshot_at")


@admin.register(BalanceAlert)
class BalanceAlertAdmin(ReadOnlyAdmin):
    list_display = ("currency", "available", "threshold", "created_at", "resolved_at")
