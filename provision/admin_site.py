"""The node's admin site: Django's, plus the second factor at login (``provision.two_factor``).

A session that passed the password but not yet the second factor has no admin permission at all
(``has_permission``), so every admin view refuses it, ours and third parties'. Admin sends such a user
to its login page; the login page sends them on to the code page (or, with no device yet, to enrolment).
The two-factor pages are the only admin pages a pending session reaches, plus a way to log out.
"""

from __future__ import annotations

from base64 import b32encode
from collections.abc import Callable
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from provision import two_factor


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
        help_text="The 6-digit code your authenticator app shows now, or one of your recovery codes.",
    )


class EnrolForm(CodeForm):
    code = forms.CharField(
        max_length=16,
        label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
        help_text="The 6-digit code the app shows now for this node.",
    )


def qr_code_svg(data: str) -> SafeString:
    """The QR code of ``data`` as inline SVG markup (made here from our own data: safe to embed)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308


def base32_key(device: TOTPDevice) -> str:
    """The key as an authenticator app takes it typed in: base32, in groups of four."""
    key = b32encode(device.bin_key).decode()
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def logged_in(request: HttpRequest) -> AbstractBaseUser:
    """The logged-in user (``staff_view`` let nobody else through)."""
    if not isinstance(request.user, AbstractBaseUser):
        raise PermissionDenied
    return request.user


class ProvisionAdminSite(admin.AdminSite):
    site_header = "Provision node"
    site_title = "Provision node"
    index_title = "Operations"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and not two_factor.two_factor_pending(request)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "GET" and two_factor.two_factor_pending(request):
            return self.to_two_factor(request, request.GET.get(REDIRECT_FIELD_NAME, ""))
        return super().login(request, extra_context)

    def get_urls(self) -> list[Any]:
        own: list[URLPattern] = [
            path("two-factor/", self.staff_view(self.two_factor_setup_view), name="two_factor"),
            path(
                "two-factor/verify/", self.staff_view(self.two_factor_verify_view), name="two_factor_verify"
            ),
            path(
                "two-factor/logout/",
                self.staff_view(require_POST(self.two_factor_logout_view)),
                name="two_factor_logout",
            ),
        ]
        return own + super().get_urls()

    # --- the two-factor pages --------------------------------------------------------------------------

    def staff_view(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """Like ``admin_view`` for a session that may still be pending: an active staff user, else login."""

        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            if not (user.is_active and getattr(user, "is_staff", False)):
                login_url = reverse("admin:login", current_app=self.name)
                return HttpResponseRedirect(
                    f"{login_url}?{urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})}"
                )
            return view(request, *args, **kwargs)

        return never_cache(csrf_protect(inner))

    def to_two_factor(self, request: HttpRequest, next_url: str) -> HttpResponse:
        has_device = isinstance(request.user, AbstractBaseUser) and two_factor.totp_device(user=request.user)
        name = "admin:two_factor_verify" if has_device else "admin:two_factor"
        url = reverse(name, current_app=self.name)
        return HttpResponseRedirect(
            f"{url}?{urlencode({REDIRECT_FIELD_NAME: next_url})}" if next_url else url
        )

    def next_url(self, request: HttpRequest) -> str:
        candidate = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return reverse("admin:index", current_app=self.name)

    def render(self, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
        pending = two_factor.two_factor_pending(request)
        return TemplateResponse(
            request,
            template,
            {
                **self.each_context(request),
                # No model list before the second factor.
                **({"available_apps": [], "is_nav_sidebar_enabled": False} if pending else {}),
                "pending": pending,
                "next": self.next_url(request),
                **context,
            },
        )

    def two_factor_verify_view(self, request: HttpRequest) -> HttpResponse:
        """The second step of login: a code from the authenticator, or a recovery code."""
        user = logged_in(request)
        if not two_factor.two_factor_pending(request):
            return HttpResponseRedirect(self.next_url(request))
        if two_factor.totp_device(user=user) is None:
            return self.to_two_factor(request, self.next_url(request))
        form = CodeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            device = two_factor.two_factor_verify(request=request, token=form.cleaned_data["code"])
            if device is not None:
                if isinstance(device, StaticDevice):
                    left = two_factor.recovery_codes_left(user=user)
                    messages.warning(
                        request,
                        f"You logged in with a recovery code; {left} left. Lost your phone? Replace your "
                        "authenticator on the two-factor page and print new recovery codes.",
                    )
                return HttpResponseRedirect(self.next_url(request))
            form.add_error(
                "code",
                "That code is not right, or was used already. After a wrong code the next try waits a "
                "little longer.",
            )
        return self.render(request, "admin/two_factor/verify.html", title="Two-factor login", form=form)

    def two_factor_setup_view(self, request: HttpRequest) -> HttpResponse:
        """Enrol an authenticator (the QR code, then a code from it), replace it, or renew recovery codes."""
        user = logged_in(request)
        current = two_factor.totp_device(user=user)
        if current is not None and two_factor.two_factor_pending(request):
            # A password alone never changes an enrolled second factor.
            return self.to_two_factor(request, self.next_url(request))
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action == "recovery_codes" and current is not None:
            codes = two_factor.recovery_codes_issue(user=user)
            return self.render(request, "admin/two_factor/codes.html", title="Recovery codes", codes=codes)
        if action == "confirm":
            form = EnrolForm(request.POST)
            if form.is_valid():
                issued = two_factor.totp_device_confirm(
                    request=request, user=user, token=form.cleaned_data["code"]
                )
                if issued is not None:
                    return self.render(
                        request, "admin/two_factor/codes.html", title="Recovery codes", codes=issued
                    )
                form.add_error(
                    "code", "That code is not right: check the phone's clock and try the next one."
                )
            return self.enrolment(request, two_factor.totp_device_start(user=user), form)
        if action == "replace" and current is not None:
            return self.enrolment(request, two_factor.totp_device_restart(user=user), EnrolForm())
        if current is None:
            return self.enrolment(request, two_factor.totp_device_start(user=user), EnrolForm())
        return self.render(
            request,
            "admin/two_factor/manage.html",
            title="Two-factor login",
            device=current,
            recovery_codes_left=two_factor.recovery_codes_left(user=user),
        )

    def enrolment(self, request: HttpRequest, device: TOTPDevice, form: EnrolForm) -> TemplateResponse:
        return self.render(
            request,
            "admin/two_factor/enrol.html",
            title="Set up two-factor login",
            form=form,
            qr_code=qr_code_svg(device.config_url),
            otpauth_uri=device.config_url,
            key=base32_key(device),
        )

    def two_factor_logout_view(self, request: HttpRequest) -> HttpResponse:
        logout(request)
        return HttpResponseRedirect(reverse("admin:login", current_app=self.name))
