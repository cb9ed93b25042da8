"""The second factor at admin login: who needs it, enrolment, recovery codes, verification (django-otp).

Who: with ``ADMIN_TWO_FACTOR_REQUIRED`` (on unless DEBUG), every active staff user who can change anything:
a superuser, or anyone with a permission that is not a ``view_`` one (approve, pay, outbox, node switch,
...). A viewer logs in with a password alone; they may enrol ahead of a new role all the same.

How: after the password, the session is *pending* until a code from the user's TOTP device (or one of
their single-use recovery codes) verifies it; django-otp's middleware then marks ``request.user``
verified for the rest of the session. A pending user who has no device yet enrols one first (the QR
code, then a code from it), which verifies the session and hands out ten recovery codes, shown once.

Devices: one confirmed TOTP device per user (replacing it confirms the new one before the old one goes)
and one static device holding the recovery codes (a new set replaces the old). Wrong codes are slowed
down by django-otp's throttling per device (1 s, 2 s, 4 s, ... after each failure).
"""

from __future__ import annotations

import django_otp
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, PermissionsMixin
from django.db import transaction
from django.http import HttpRequest
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODES = 10
TOTP_MAX_DIGITS = 8  # TOTP codes are 6 (or 8) digits; recovery codes are 8 letters and digits
TOTP_DEVICE_NAME = "authenticator"
RECOVERY_DEVICE_NAME = "recovery codes"


def two_factor_required(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether ``user`` must pass the second factor before admin lets them in."""
    if not settings.ADMIN_TWO_FACTOR_REQUIRED or not isinstance(user, PermissionsMixin):
        return False
    if not (user.is_authenticated and user.is_active and getattr(user, "is_staff", False)):
        return False
    if user.is_superuser:
        return True
    # Admin reads the same permissions (cached on the user) right after: this costs no query of its own.
    return any(
        not codename.startswith("view_")
        for codename in (perm.partition(".")[2] for perm in user.get_all_permissions())
    )


def is_verified(request: HttpRequest) -> bool:
    checker = getattr(request.user, "is_verified", None)
    return bool(checker()) if callable(checker) else False


def two_factor_pending(request: HttpRequest) -> bool:
    """The user logged in with their password but this session has not passed the second factor yet."""
    return two_factor_required(user=request.user) and not is_verified(request)


def totp_device(*, user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).first()


def totp_device_start(*, user: AbstractBaseUser) -> TOTPDevice:
    """The device being enrolled: the user's unconfirmed one, or a new key. A confirmed device stays in
    use until the new one is confirmed."""
    pending = TOTPDevice.objects.devices_for_user(user, confirmed=False).order_by("-pk").first()
    if pending is not None:
        return pending
    return TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def totp_device_restart(*, user: AbstractBaseUser) -> TOTPDevice:
    """A fresh key to enrol (replacing a phone): drop the unconfirmed ones, keep the confirmed one."""
    TOTPDevice.objects.devices_for_user(user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


@transaction.atomic
def totp_device_confirm(*, request: HttpRequest, user: AbstractBaseUser, token: str) -> list[str] | None:
    """Confirm the device being enrolled with a code from it: it replaces any other TOTP device, the
    session is verified by it, and a new set of recovery codes is issued (returned, to show once).
    ``None`` when the code is wrong."""
    device = (
        TOTPDevice.objects.devices_for_user(user, confirmed=False).select_for_update().order_by("-pk").first()
    )
    if device is None or not device.verify_token(token):
        return None
    TOTPDevice.objects.devices_for_user(user, confirmed=None).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    session_verified(request, device)
    return recovery_codes_issue(user=user)


@transaction.atomic
def recovery_codes_issue(*, user: AbstractBaseUser) -> list[str]:
    """A new set of single-use recovery codes; the previous set stops working."""
    StaticDevice.objects.devices_for_user(user, confirmed=None).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def recovery_codes_left(*, user: AbstractBaseUser) -> int:
    return StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True).count()


def two_factor_verify(*, request: HttpRequest, token: str) -> Device | None:
    """Check ``token`` against the user's confirmed devices (the TOTP device, then the recovery codes) and
    verify the session with the device that accepts it. ``None`` when none does."""
    user = request.user
    token = "".join(token.split()).lower()
    if not isinstance(user, AbstractBaseUser) or not token:
        return None
    # A code goes to the kind of device it can be from: a failed check counts against the device it was
    # checked on (throttling), so a recovery code must not slow down the next code from the phone.
    device_class = TOTPDevice if token.isdigit() and len(token) <= TOTP_MAX_DIGITS else StaticDevice
    for device in device_class.objects.devices_for_user(user, confirmed=True):
        verified = django_otp.verify_token(user, device.persistent_id, token)
        if verified is not None:
            session_verified(request, verified)
            return verified
    return None


def session_verified(request: HttpRequest, device: Device) -> None:
    """Mark the session as having passed the second factor with ``device``, under a new session key (the
    session gained rights: a key seen before this point must not carry them)."""
    request.session.cycle_key()
    django_otp.login(request, device)
