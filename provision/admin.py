"""The node switch, runtime settings, heartbeats and notifications in admin; and the third-party admin
actions put behind a permission like ours.

Every admin action that changes something requires a permission (issue 17): django-q2's "resubmit" runs a
task again (a payout task among them) and axes' clean-up forgets failed logins, and neither asks for one.
Their model admins are registered again here with the same action behind Django's change/delete
permission of the model (superusers only: no staff role has them).
"""

from __future__ import annotations

from typing import Any

from axes import admin as axes_admin
from axes.models import AccessAttempt
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_q import admin as django_q_admin
from django_q.models import Failure, Success

from provision import control as control_services
from provision import runtime
from provision.admin_base import ReadOnlyAdmin
from provision.env import parse_amount_map
from provision.models import Heartbeat, NodeControl, NodeSettings, Notification


@admin.register(NodeControl)
class NodeControlAdmin(admin.ModelAdmin):
    """The pause switch: one row, shown read-only; the Pause/Resume button of the health strip (on every admin
    page) posts to ``toggle`` below. Nobody adds or deletes the row."""

    list_display = ("__str__", "paused", "paused_reason", "updated_at")
    fields = readonly_fields = ("paused", "paused_reason", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        toggle = path(
            "toggle/",
            self.admin_site.admin_view(require_POST(self.toggle_view)),
            name="provision_nodecontrol_toggle",
        )
        return [toggle, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        control = NodeControl.current()
        return HttpResponseRedirect(reverse("admin:provision_nodecontrol_change", args=[control.pk]))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        # Nothing to save here: the strip's button is the one way to pause or resume.
        no_save = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().changeform_view(request, object_id, form_url, {**(extra_context or {}), **no_save})

    def toggle_view(self, request: HttpRequest) -> HttpResponse:
        """Pause (``paused=1``, optional ``reason``) or resume (``paused=0``), then go back."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        paused = request.POST.get("paused") == "1"
        reason = request.POST.get("reason", "").strip()[:255] or f"Paused from admin by {request.user}"
        control = control_services.node_pause_set(paused=paused, reason=reason if paused else "")
        self.log_change(request, control, f"Paused: {reason}" if paused else "Resumed")
        self.message_user(
            request,
            "Node paused: every new offer is declined."
            if paused
            else "Node resumed: offers are decided again.",
            messages.WARNING if paused else messages.SUCCESS,
        )
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("admin:index")
        return HttpResponseRedirect(back)


class NodeSettingsForm(forms.ModelForm):
    class Meta:
        model = NodeSettings
        fields = list(runtime.FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field, name in runtime.FIELDS.items():
            if field not in self.fields:  # a view-only user's form has no fields
                continue
            shown = runtime.environment_value(field)
            if isinstance(shown, dict):
                shown = ", ".join(f"{cur}:{amount}" for cur, amount in shown.items()) or "none"
            self.fields[field].help_text = f"Empty: the environment's {name} ({shown})." + (
                " An amount for every currency, or a CUR:amount list (e.g. NGN:500000,KES:100000)."
                if field in runtime.AMOUNT_FIELDS
                else ""
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for field in runtime.AMOUNT_FIELDS:
            value = cleaned.get(field) or ""
            try:
                parse_amount_map(value)
            except (ValueError, ArithmeticError):
                self.add_error(field, "An amount, or a comma-separated CUR:amount list.")
        return cleaned


def _shown(value: Any, field: str) -> str:
    if value in ("", None):
        environment = runtime.environment_value(field)
        if isinstance(environment, dict):
            environment = ",".join(f"{cur}:{amount}" for cur, amount in environment.items())
        return f"(environment: {environment or 'none'})"
    return str(value)


@admin.register(NodeSettings)
class NodeSettingsAdmin(admin.ModelAdmin):
    """Runtime settings (settings role): one row; each change is logged with its old and new values."""

    form = NodeSettingsForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        row, _ = NodeSettings.objects.get_or_create(pk=1)
        return HttpResponseRedirect(reverse("admin:provision_nodesettings_change", args=[row.pk]))

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        if add or not form.changed_data:
            return super().construct_change_message(request, form, formsets, add)
        changes = [
            f"{name}: {_shown(form.initial.get(name), name)} -> {_shown(form.cleaned_data.get(name), name)}"
            for name in form.changed_data
        ]
        return "Changed " + "; ".join(changes)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        transaction.on_commit(runtime.forget)


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "beat_at")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "kind",
        "subject",
        "text",
        "sent_at",
        "resolved_at",
        "attempts",
        "last_error",
    )
    list_filter = (
        "kind",
        ("sent_at", admin.EmptyFieldListFilter),
        ("resolved_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("subject", "text")
    date_hierarchy = "created_at"


@admin.action(description="Resubmit selected tasks to the queue", permissions=["change"])
def resubmit_tasks(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    django_q_admin.resubmit_task(model_admin, request, queryset)


class SuccessAdmin(django_q_admin.TaskAdmin):
    actions = [resubmit_tasks]


class FailureAdmin(django_q_admin.FailAdmin):
    actions = [resubmit_tasks]


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        # Not axes' own action: it reads the time of a login attempt from the request, which only a login
        # request has, and fails with a 500 anywhere else (axes 8.3).
        expired_before = timezone.now() - settings.AXES_COOLOFF_TIME
        count, _ = AccessAttempt.objects.filter(attempt_time__lte=expired_before).delete()
        self.message_user(request, f"Cleaned up {count} expired access attempts.")


for _model, _model_admin in (
    (Success, SuccessAdmin),
    (Failure, FailureAdmin),
    (AccessAttempt, AccessAttemptAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)
