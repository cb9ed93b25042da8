"""PSP records in admin: transfers, webhook events and circuits read-only; institution mapping editable."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from provision import formatting
from provision.admin_base import AuditedChangesAdmin, ReadOnlyAdmin
from provision.csv_export import CsvExportMixin
from psp import exports, health
from psp.models import InstitutionMapping, PspCircuit, PspRoute, Transfer, WebhookEvent


@admin.register(Transfer)
class TransferAdmin(CsvExportMixin, ReadOnlyAdmin):
    list_display = (
        "reference",
        "psp",
        "status",
        "amount_display",
        "fee_display",
        "account_masked",
        "psp_transaction_id",
        "created_at",
    )
    list_filter = ("status", "psp", "currency")
    search_fields = ("reference", "psp_transaction_id", "order__order_id")
    list_select_related = ("order",)
    export_columns = exports.TRANSFER_COLUMNS
    export_select_related = ("order",)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Transfer) -> str:
        return formatting.money(obj.amount, obj.currency)

    @admin.display(description="Fee", ordering="fee")
    def fee_display(self, obj: Transfer) -> str:
        return formatting.money(obj.fee, obj.currency)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("psp", "event_id", "event_type", "reference", "signature_valid", "received_at", "outcome")
    list_filter = ("psp", "signature_valid", "event_type")
    search_fields = ("event_id", "reference")


@admin.register(InstitutionMapping)
class InstitutionMappingAdmin(admin.ModelAdmin):
    list_display = ("psp", "currency", "institution", "institution_name", "psp_code", "enabled")
    list_filter = ("psp", "currency", "enabled")
    search_fields = ("institution", "institution_name", "psp_code")
    list_editable = ("enabled",)


@admin.register(PspCircuit)
class PspCircuitAdmin(ReadOnlyAdmin):
    list_display = ("psp", "state", "consecutive_failures", "opened_at", "probe_at", "updated_at")
    actions = ["close_circuits"]

    def has_close_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("psp.close_pspcircuit"))

    @admin.action(description="Close the selected circuits (the PSP is back)", permissions=["close"])
    def close_circuits(self, request: HttpRequest, queryset: QuerySet[PspCircuit]) -> None:
        circuits = list(queryset)
        for circuit in circuits:
            health.circuit_reset(psp=circuit.psp)
            self.log_change(request, circuit, "Closed by hand")
        self.message_user(request, f"Closed: {', '.join(c.psp for c in circuits)}", messages.SUCCESS)


@admin.register(PspRoute)
class PspRouteAdmin(AuditedChangesAdmin):
    """Which adapter pays which corridor: the most specific institution pattern first, then priority."""

    list_display = ("currency", "institution", "psp", "priority", "enabled", "note")
    list_filter = ("currency", "psp", "enabled")
    search_fields = ("institution", "psp", "note")
    list_editable = ("priority", "enabled")
