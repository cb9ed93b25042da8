"""The node switch in admin, and the third-party admin actions put behind a permission like ours.

Every admin action that changes something requires a permission (issue 17): django-q2's "resubmit" runs a
task again (a payout task among them) and axes' clean-up forgets failed logins, and neither asks for one.
Their model admins are registered again here with the same action behind Django's change/delete
permission of the model (superusers only: no staff role has them).
"""

from __future__ import annotations

from typing import Any

from axes import admin as axes_admin
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django_q import admin as django_q_admin
from django_q.models import Failure, Success

from provision.models import NodeControl


@admin.register(NodeControl)
class NodeControlAdmin(admin.ModelAdmin):
    list_display = ("__str__", "paused", "paused_reason", "updated_at")
    fields = ("paused", "paused_reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not NodeControl.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
