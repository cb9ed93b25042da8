"""Admin login lock-out: django-axes' database handler plus a limit per client IP over all user names.

Axes locks the (user name, client IP) pair after ``AXES_FAILURE_LIMIT`` failures, so an attacker
elsewhere cannot lock staff out of their own account. That rule alone lets one IP try one password on
every user name (password spraying): each pair fails once. Axes can also lock by IP, but with the same
limit for every rule, which would lock a whole office out after a few typos and make the pair rule
pointless. So the IP rule has its own, higher limit (``ADMIN_LOGIN_IP_FAILURE_LIMIT``): failures from
one IP within the cool-off, whatever the user names, counted from axes' own attempt records.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone


class LoginLockoutHandler(AxesDatabaseHandler):
    def ip_failures(self, request: HttpRequest) -> int:
        """Failed logins from the request's client IP within the cool-off, over all user names."""
        now = getattr(request, "axes_attempt_time", None) or timezone.now()
        total = AccessAttempt.objects.filter(
            ip_address=getattr(request, "axes_ip_address", None),
            attempt_time__gte=now - settings.AXES_COOLOFF_TIME,
        ).aggregate(total=Sum("failures_since_start"))["total"]
        return int(total or 0)

    def ip_locked(self, request: HttpRequest) -> bool:
        return bool(getattr(settings, "AXES_LOCK_OUT_AT_FAILURE", True)) and (
            self.ip_failures(request) >= settings.ADMIN_LOGIN_IP_FAILURE_LIMIT
        )

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        return bool(super().is_locked(request, credentials)) or self.ip_locked(request)

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        # The failure that reaches the IP limit is answered as a lock-out, as axes does for its own rule.
        if request is not None and not getattr(request, "axes_locked_out", False) and self.ip_locked(request):
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]
            user_locked_out.send(
                "axes",
                request=request,
                username=get_client_username(request, credentials),
                ip_address=getattr(request, "axes_ip_address", None),
            )
