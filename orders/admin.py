"""Django admin for ops staff: the order queue, transitions as actions that call the services.

Nothing here writes an order's state directly: every action calls the same service auto mode uses,
which locks the row, checks the transition on the locked state and writes ledger and outbox. A double
click or two staff acting at once give one transition; the loser is told the order moved on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django_fsm_log.admin import StateLogInline

from balances.models import LedgerEntry
from orders import admin_confirm, exports, iso20022, services, workflow
from orders.admin_reports import FinancialReportMixin
from orders.models import (
    PAYOUT_APPROVAL_STATES,
    Order,
    OrderStatus,
    OutboxMessage,
    OutboxStatus,
    ReviewListEntry,
)
from provision import formatting, runtime
from provision.admin_base import ReadOnlyAdmin
from provision.csv_export import CsvExportMixin
from provision.errors import ApplicationError
from provision.logging import mask_account
from psp.models import Transfer


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=255, required=True, help_text="Sent to the aggregator and kept in the log."
    )


class ExternalReferenceForm(forms.Form):
    external_reference = forms.CharField(
        max_length=128, required=True, help_text="Bank or PSP reference of the payment."
    )


class BankFileForm(forms.Form):
    debtor_name = forms.CharField(max_length=140, help_text="Name of the account holder the bank debits.")
    debtor_account = forms.CharField(max_length=34, help_text="The account the bank debits.")
    debtor_agent_bic = forms.CharField(max_length=11, required=False, help_text="Your bank's BIC (optional).")
    execution_date = forms.DateField(required=False, help_text="Requested execution date (default: today).")


class StatusReportForm(forms.Form):
    report = forms.FileField(help_text="A pain.002 customer payment status report from your bank.")


class EvidenceForm(forms.Form):
    evidence = forms.CharField(
        max_length=255, required=True, help_text="How it was settled (aggregator ticket, statement line)."
    )


class ResolveForm(forms.Form):
    outcome = forms.ChoiceField(
        choices=[("paid", "The recipient was paid"), ("not_paid", "The recipient was not paid")]
    )
    evidence = forms.CharField(
        max_length=255, required=True, help_text="What you checked (statement line, PSP ticket)."
    )


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = (
        "created_at",
        "kind",
        "amount_money",
        "total_delta_money",
        "reserved_delta_money",
        "psp",
        "actor",
        "reason",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Amount")
    def amount_money(self, obj: LedgerEntry) -> str:
        return formatting.money(obj.amount, obj.balance.currency)

    @admin.display(description="Total Δ")
    def total_delta_money(self, obj: LedgerEntry) -> str:
        return formatting.money_amount(obj.total_delta, obj.balance.currency)

    @admin.display(description="Reserved Δ")
    def reserved_delta_money(self, obj: LedgerEntry) -> str:
        return formatting.money_amount(obj.reserved_delta, obj.balance.currency)

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).select_related("balance", "actor")


class TransferInline(admin.TabularInline):
    model = Transfer
    fields = (
        "attempt",
        "psp",
        "reference",
        "status",
        "psp_transaction_id",
        "sends",
        "failure_message",
        "created_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OutboxInline(admin.TabularInline):
    model = OutboxMessage
    fields = ("kind", "dedupe_key", "status", "attempts", "last_status_code", "last_error", "delivered_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# What each action writes to an order's admin history (LogEntry), by the verb of its success message.
HISTORY = {
    "Accepted": "Accepted (staff policy)",
    "Recorded approval of": "Recorded an approval to pay",
    "Started payout of": "Approved the payout through the PSP",
    "Declined": "Declined",
    "Cancelled": "Cancelled",
    "Marked paid": "Marked paid outside the node",
    "Resolved": "Resolved the review",
    "Closed the reversal of": "Closed the reversal",
}


def _back_url(request: HttpRequest, orders: list[Order]) -> str:
    """Where "Back" on a confirmation page goes: the order's page when it came from there, else the list
    as it was filtered."""
    match = request.resolver_match
    if match is not None and match.url_name == "orders_order_transition" and len(orders) == 1:
        return reverse("admin:orders_order_change", args=[orders[0].pk])
    return request.get_full_path()


def _actor(request: HttpRequest) -> AbstractBaseUser | None:
    user = request.user
    return user if isinstance(user, AbstractBaseUser) else None


def _time_left(until: datetime | None) -> str:
    return formatting.countdown(until)


# The shortest order-id prefix the search looks up (fewer characters would match half the table).
SHORT_ID_MIN = 6


@admin.register(Order)
class OrderAdmin(FinancialReportMixin, CsvExportMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "status_badge",
        "amount_display",
        "institution",
        "account_last4",
        "age",
        "time_left",
        "psp",
        "psp_tx_id",
    )
    list_filter = ("status", "currency", "psp", "flavour", ("received_at", admin.DateFieldListFilter))
    search_fields = ("=order_id", "reference", "account_identifier", "psp_tx_id", "external_reference")
    ordering = ("-received_at",)
    date_hierarchy = "received_at"
    list_per_page = 50
    export_columns = exports.ORDER_COLUMNS
    export_date_field = "received_at"
    export_select_related = ("approved_by",)
    show_full_result_count = False
    inlines = (StateLogInline, LedgerEntryInline, TransferInline, OutboxInline)
    actions = (
        "accept_orders",
        "record_approval",
        "approve_payouts",
        "decline_orders",
        "cancel_orders",
        "mark_paid",
        "resolve_review",
        "close_reversals",
        "export_bank_file",
    )
    # The order page leads with what a person decides on (status, amount, recipient; the actions are the
    # buttons above), then the payout and the times; the aggregator's and the crypto side's fields, mostly
    # empty for a payout decision, are folded away at the bottom.
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "status_badge",
                    "amount_display",
                    "account_name",
                    "account_identifier",
                    "institution",
                    "memo",
                    "time_left",
                    "decline_reason",
                    "cancel_reason",
                )
            },
        ),
        (
            "Payout",
            {"fields": ("psp", "psp_tx_id", "external_reference", "payout_attempted", "approved_by")},
        ),
        (
            "Times",
            {
                "fields": (
                    "received_at",
                    "accept_deadline",
                    "accepted_at",
                    "hold_until",
                    "paid_at",
                    "finished_at",
                    "updated_at",
                )
            },
        ),
        (
            "Aggregator and crypto details",
            {
                "classes": ("collapse",),
                "fields": (
                    "order_id",
                    "flavour",
                    "reference",
                    "token",
                    "token_amount",
                    "network",
                    "accept_amount",
                    "exclude_psps",
                    "metadata",
                    "request_id",
                    "accept_attempts",
                    "accept_outcome_unknown",
                    "accept_claimed_until",
                    "payout_due_at",
                    "created_at",
                ),
            },
        ),
    )
    readonly_fields = [f.name for f in Order._meta.fields] + ["status_badge", "amount_display", "time_left"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        """The search fields, plus the start of an order id: the short id the list and the index show
        (``5f8a3c1e-2b4d``, pasted with or without the index's trailing "…") finds its order."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        prefix = search_term.strip().rstrip("…").rstrip(".").strip()
        if len(prefix) >= SHORT_ID_MIN and " " not in prefix:
            results |= queryset.filter(order_id__startswith=prefix)
        return results, may_have_duplicates

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("orders.approve_order"))

    def has_pay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("orders.pay_order"))

    # --- columns (all from the row itself: no query per row) ------------------------------------------

    @admin.display(description="Order", ordering="order_id")
    def short_id(self, obj: Order) -> str:
        return obj.order_id[:13]

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Order) -> str:
        # Colours per status in provision/static/provision/admin.css (no inline style under the CSP).
        return format_html('<b class="status-badge status-{}">{}</b>', obj.status, obj.get_status_display())

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Order) -> str:
        return formatting.money(obj.amount, obj.currency)

    @admin.display(description="Account")
    def account_last4(self, obj: Order) -> str:
        return mask_account(obj.account_identifier)[-8:] if obj.account_identifier else "—"

    @admin.display(description="Age", ordering="received_at")
    def age(self, obj: Order) -> str:
        return formatting.age(obj.received_at)

    @admin.display(description="Time left")
    def time_left(self, obj: Order) -> str:
        if obj.status == OrderStatus.HELD:
            return _time_left(obj.hold_until)
        if obj.status == OrderStatus.RECEIVED:
            return _time_left(obj.accept_deadline)
        return "—"

    # --- actions ------------------------------------------------------------------------------------------

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Order],
        verb: str,
        call: Callable[[Order], Order],
        note: str = "",
    ) -> None:
        """Run ``call`` on each order; each one done goes into admin's history (LogEntry) by the acting
        user: what was done (``HISTORY``), the state it left, and ``note`` (the reason, reference or
        evidence given)."""
        done = 0
        for order in queryset.order_by("pk"):
            try:
                changed = call(order)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{order.order_id}: {exc.message}", messages.ERROR)
                continue
            history = f"{HISTORY.get(verb, verb)}, now {changed.get_status_display().lower()}"
            self.log_change(request, changed, history + (f": {note}" if note else ""))
        if done:
            self.message_user(request, f"{verb} {done} order(s).", messages.SUCCESS)

    def _confirm_context(
        self, request: HttpRequest, queryset: QuerySet[Order], *, action: str, title: str, form: forms.Form
    ) -> dict[str, Any]:
        """The confirmation page of ``action``: each selected order with what to check (admin_confirm)."""
        orders = list(queryset.order_by("pk"))
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "orders": orders,
            "rows": admin_confirm.confirm_rows(orders, action=action),
            "balance_column": admin_confirm.balance_column(action),
            "form": form,
            "action": action,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": _back_url(request, orders),
        }

    def _with_form(
        self,
        request: HttpRequest,
        queryset: QuerySet[Order],
        *,
        action: str,
        title: str,
        form_class: type[forms.Form],
        apply: Callable[[forms.Form], None],
    ) -> HttpResponse | None:
        """Run ``apply`` once the confirmation page (with its form, if any) is posted back with "apply";
        until then show that page. Nothing runs from the list without it."""
        form = form_class(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            apply(form)
            return None
        context = self._confirm_context(request, queryset, action=action, title=title, form=form)
        return TemplateResponse(request, "admin/orders/order/action_form.html", context)

    @admin.action(description="Accept selected orders (staff policy)", permissions=["approve"])
    def accept_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        def accept(order: Order) -> Order:
            decided = services.order_decide(order_pk=order.pk, actor=_actor(request))
            if decided.status == OrderStatus.ACCEPTING:
                return workflow.order_accept(order_pk=order.pk)
            if decided.status != OrderStatus.ACCEPTING:
                raise services.OrderTransitionNotAllowed(
                    f"Not accepted: the order is {decided.get_status_display().lower()}"
                    + (f" ({decided.get_decline_reason_display()})" if decided.decline_reason else "")
                )
            return decided

        return self._with_form(
            request,
            queryset,
            action="accept_orders",
            title="Accept orders",
            form_class=forms.Form,
            apply=lambda _form: self._each(request, queryset, "Accepted", accept),
        )

    @admin.action(description="Record my approval to pay selected orders (maker)", permissions=["approve"])
    def record_approval(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        actor = _actor(request)
        if actor is None:
            return None
        return self._with_form(
            request,
            queryset,
            action="record_approval",
            title="Record my approval to pay",
            form_class=forms.Form,
            apply=lambda _form: self._each(
                request,
                queryset,
                "Recorded approval of",
                lambda o: services.order_approve_payout(order_pk=o.pk, actor=actor),
            ),
        )

    @admin.action(description="Pay selected held orders through the PSP", permissions=["pay"])
    def approve_payouts(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        return self._with_form(
            request,
            queryset,
            action="approve_payouts",
            title="Pay through the PSP",
            form_class=forms.Form,
            apply=lambda _form: self._each(
                request,
                queryset,
                "Started payout of",
                lambda order: services.order_start_payout(order_pk=order.pk, actor=_actor(request)),
            ),
        )

    @admin.action(description="Decline selected received orders…", permissions=["approve"])
    def decline_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        def apply(form: forms.Form) -> None:
            reason = form.cleaned_data["reason"]
            self._each(
                request,
                queryset,
                "Declined",
                lambda o: services.order_decline(order_pk=o.pk, reason=reason, actor=_actor(request)),
                note=reason,
            )

        return self._with_form(
            request,
            queryset,
            action="decline_orders",
            title="Decline orders",
            form_class=ReasonForm,
            apply=apply,
        )

    @admin.action(description="Cancel selected accepted orders…", permissions=["approve"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        def apply(form: forms.Form) -> None:
            reason = form.cleaned_data["reason"]
            self._each(
                request,
                queryset,
                "Cancelled",
                lambda o: services.order_cancel(order_pk=o.pk, reason=reason, actor=_actor(request)),
                note=reason,
            )

        return self._with_form(
            request,
            queryset,
            action="cancel_orders",
            title="Cancel orders",
            form_class=ReasonForm,
            apply=apply,
        )

    @admin.action(description="Mark selected orders paid outside the node…", permissions=["pay"])
    def mark_paid(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request, "Mark paid one order at a time: each has its own reference.", messages.ERROR
            )
            return None

        def apply(form: forms.Form) -> None:
            reference = form.cleaned_data["external_reference"]
            self._each(
                request,
                queryset,
                "Marked paid",
                lambda o: services.order_mark_paid(
                    order_pk=o.pk, external_reference=reference, actor=_actor(request)
                ),
                note=f"external reference {reference}",
            )

        return self._with_form(
            request,
            queryset,
            action="mark_paid",
            title="Mark paid",
            form_class=ExternalReferenceForm,
            apply=apply,
        )

    @admin.action(description="Resolve selected needs-review payouts…", permissions=["pay"])
    def resolve_review(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        def apply(form: forms.Form) -> None:
            paid = form.cleaned_data["outcome"] == "paid"
            evidence = form.cleaned_data["evidence"]
            self._each(
                request,
                queryset,
                "Resolved",
                lambda o: services.order_resolve_review(
                    order_pk=o.pk, paid=paid, evidence=evidence, actor=_actor(request)
                ),
                note=f"{'paid' if paid else 'not paid'}: {evidence}",
            )

        return self._with_form(
            request,
            queryset,
            action="resolve_review",
            title="Resolve review",
            form_class=ResolveForm,
            apply=apply,
        )

    @admin.action(
        description="Close selected reversed payouts (settled with the aggregator)…", permissions=["pay"]
    )
    def close_reversals(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        def apply(form: forms.Form) -> None:
            evidence = form.cleaned_data["evidence"]
            self._each(
                request,
                queryset,
                "Closed the reversal of",
                lambda o: services.order_close_reversal(
                    order_pk=o.pk, evidence=evidence, actor=_actor(request)
                ),
                note=evidence,
            )

        return self._with_form(
            request,
            queryset,
            action="close_reversals",
            title="Close reversed payouts",
            form_class=EvidenceForm,
            apply=apply,
        )

    def get_urls(self) -> list[Any]:
        from django.urls import path

        extra = [
            path(
                "import-status/",
                self.admin_site.admin_view(self.import_status_view),
                name="orders_order_import_status",
            ),
            path(
                "<int:pk>/do/<str:action>/",
                self.admin_site.admin_view(self.transition_view),
                name="orders_order_transition",
            ),
        ]
        return extra + super().get_urls()

    @admin.action(description="Export selected as an ISO 20022 pain.001 bank file…", permissions=["pay"])
    def export_bank_file(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        form = BankFileForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            data = form.cleaned_data
            try:
                xml, _exported = iso20022.bank_file_export(
                    order_pks=list(queryset.values_list("pk", flat=True)),
                    debtor=iso20022.Debtor(
                        data["debtor_name"], data["debtor_account"], data["debtor_agent_bic"]
                    ),
                    actor=_actor(request),
                    execution_date=data["execution_date"],
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return None
            for order in _exported:
                self.log_change(request, order, "Exported in a pain.001 bank file (paying)")
            response = HttpResponse(xml, content_type="application/xml")
            response["Content-Disposition"] = (
                f'attachment; filename="pain001-{timezone.now():%Y%m%d-%H%M%S}.xml"'
            )
            return response
        context = self._confirm_context(
            request, queryset, action="export_bank_file", title="Export bank file (pain.001)", form=form
        )
        return TemplateResponse(request, "admin/orders/order/action_form.html", context)

    def buttons_for(self, request: HttpRequest, order: Order) -> list[tuple[str, str]]:
        """The actions this user may take on this order now, driven by the state machine."""
        available = {t.name for t in order.get_available_status_transitions()}  # type: ignore[attr-defined]
        staff_policy = runtime.current().staff_policy
        candidates = [
            ("accept_orders", "Accept", "begin_accept" in available and staff_policy, "approve"),
            ("decline_orders", "Decline…", "decline" in available, "approve"),
            ("record_approval", "Record approval", order.status in PAYOUT_APPROVAL_STATES, "approve"),
            ("approve_payouts", "Pay via PSP", "start_payout" in available, "pay"),
            ("export_bank_file", "Pay by bank file…", "start_payout" in available, "pay"),
            ("mark_paid", "Mark paid…", "mark_paid" in available, "pay"),
            ("cancel_orders", "Cancel…", "cancel" in available, "approve"),
            ("resolve_review", "Resolve review…", "resolve_paid" in available, "pay"),
            ("close_reversals", "Close reversal…", "close_reversal" in available, "pay"),
        ]
        return [
            (action, label)
            for action, label, allowed, permission in candidates
            if allowed and getattr(self, f"has_{permission}_permission")(request)
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        order = Order.objects.filter(pk=object_id).first()
        extra = {
            **(extra_context or {}),
            "transition_buttons": self.buttons_for(request, order) if order else [],
        }
        return super().change_view(request, object_id, form_url, extra)

    def transition_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        """One order, one action: confirm (or fill the form), then run the same action as the list does.

        A user who may not run ``action`` at all gets the same answer whatever ``pk`` is (a redirect to the
        order list with "not available"), before any look-up: the URL tells nobody which orders exist.
        """
        from django.shortcuts import get_object_or_404, redirect

        if action not in self.get_actions(request):
            self.message_user(request, "That action is not available for this order now.", messages.ERROR)
            return redirect(reverse("admin:orders_order_changelist"))
        order = get_object_or_404(Order, pk=pk)
        allowed = dict(self.buttons_for(request, order))
        change_url = reverse("admin:orders_order_change", args=[order.pk])
        if action not in allowed:
            self.message_user(request, "That action is not available for this order now.", messages.ERROR)
            return redirect(change_url)
        # Every action shows its confirmation page first and runs when it is posted back with "apply".
        response = getattr(self, action)(request, Order.objects.filter(pk=order.pk))
        return response if response is not None else redirect(change_url)

    def import_status_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_pay_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        form = StatusReportForm(request.POST or None, request.FILES or None)
        lines: list[iso20022.StatusLine] = []
        if request.method == "POST" and form.is_valid():
            try:
                lines = iso20022.pain002_import(xml=form.cleaned_data["report"].read(), actor=_actor(request))
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self._log_status_report(request, lines)
                refused = sum(not line.applied for line in lines)
                if refused:
                    self.message_user(
                        request,
                        f"{refused} transaction status(es) not applied: see the outcome of each below.",
                        messages.ERROR,
                    )
                if len(lines) > refused:
                    self.message_user(
                        request, f"Applied {len(lines) - refused} transaction status(es).", messages.SUCCESS
                    )
        context = {
            **self.admin_site.each_context(request),
            "title": "Import bank status report (pain.002)",
            "form": form,
            "lines": lines,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/orders/order/import_status.html", context)

    def _log_status_report(self, request: HttpRequest, lines: list[iso20022.StatusLine]) -> None:
        """Write each line of an imported pain.002 to its order's history (applied or not)."""
        references = {line.reference: line for line in lines}
        transfers = Transfer.objects.filter(reference__in=list(references)).select_related("order")
        for transfer in transfers:
            line = references[transfer.reference]
            self.log_change(
                request,
                transfer.order,
                f"pain.002 status {line.status} for {line.reference}: {line.outcome}",
            )


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    """Rows only the services and the delivery worker write; staff may send one again or give it up."""

    list_display = (
        "pk",
        "kind",
        "dedupe_key",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
    )
    list_filter = ("status", "kind")
    search_fields = ("dedupe_key",)
    ordering = ("-pk",)
    actions = ("replay", "abandon")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("orders.replay_outboxmessage"))

    def has_abandon_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("orders.abandon_outboxmessage"))

    @admin.action(description="Send again from now", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        for message in queryset.exclude(status=OutboxStatus.DELIVERED):
            services.outbox_replay(message_id=message.pk)
            self.log_change(request, message, "Sent again from now")
        self._delivered_left_alone(request, queryset)
        self.message_user(request, "Queued for delivery.", messages.SUCCESS)

    def _delivered_left_alone(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        delivered = queryset.filter(status=OutboxStatus.DELIVERED).count()
        if delivered:
            self.message_user(
                request, f"{delivered} already delivered row(s) left as they are.", messages.WARNING
            )

    @admin.action(description="Abandon (stop trying)", permissions=["abandon"])
    def abandon(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        for message in queryset.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.REFUSED]):
            services.outbox_abandon(message_id=message.pk)
            self.log_change(request, message, "Abandoned: the aggregator will not be told")
        self._delivered_left_alone(request, queryset)
        self.message_user(request, "Abandoned.", messages.WARNING)


@admin.register(ReviewListEntry)
class ReviewListEntryAdmin(admin.ModelAdmin):
    list_display = ("account_identifier", "institution", "reason", "created_at")
    search_fields = ("account_identifier", "reason")
