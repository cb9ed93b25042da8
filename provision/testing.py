"""Helpers for tests: sign requests the way the Go aggregator does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from provision import canonical_json, signing, two_factor


def post_signed_raw(client: Client, path: str, payload: dict[str, Any], *, secret: str | None = None) -> Any:
    """POST like the Go aggregator: canonical body, X-Request-Signature over it, no Content-Type."""
    body = canonical_json.go_dumps(payload)
    signature = signing.sign(secret or settings.AGGREGATOR_SECRET_KEY, body)
    return client.generic("POST", path, data=body, content_type="", HTTP_X_REQUEST_SIGNATURE=signature)


def post_hmac(
    client: Client,
    path: str,
    payload: dict[str, Any],
    *,
    secret: str | None = None,
    client_id: str | None = None,
    timestamp: float | None = None,
) -> Any:
    """POST like the seed flavour: timestamp in the body, Authorization: HMAC <client_id>:<sig>."""
    body, signature = signing.signed_body(
        secret or settings.AGGREGATOR_SECRET_KEY, payload, timestamp=int(timestamp or time.time())
    )
    header = f"HMAC {client_id or settings.AGGREGATOR_CLIENT_ID}:{signature}"
    return client.generic("POST", path, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)


def numbers_body(size: int = 64 * 1024) -> bytes:
    """A JSON object of ``size`` bytes full of numbers: the most expensive body to re-marshal the Go way."""
    return b'{"a":[' + b",".join(b"1" for _ in range((size - 8) // 2)) + b"]}"


def run_together(calls: list[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Start every call at the same moment, each in its own thread with its own database connection.

    Returns each call's result, or the exception it raised, in order.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def runner(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the caller inspects what each call got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment of a child Python process with the production settings and random-looking test
    secrets (plus ``overrides``), for tests of what a freshly started process does."""
    import os

    return {
        "PATH": os.environ.get("PATH", ""),
        "PROVISION_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        "SECRET": "biCQWzgsHgtyWftEubOR30K6f2O_AiJkDyq92shsLJnZuHDzLZciLqyT3BzqT1VTwE0",
        "AGGREGATOR_CLIENT_ID": "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b",
        "AGGREGATOR_SECRET_KEY": "QaxTNDq0V-J-gBs-qw2GKUWII01jlhzPuebREKiW64o",
        "SANDBOX_WEBHOOK_SECRET": "DuiqdS8ii0OE0EJhjbt8LmES0oo-foJshuLVAQE6X-c",
        "DATABASE_URL": "sqlite:////tmp/provision-subprocess-test.sqlite3",
        **overrides,
    }


def admin_client(user: Any) -> Client:
    """A test client logged in to admin as ``user``, through the second factor when the user needs it (as
    they would: a TOTP device enrolled, a code from it entered on the code page)."""
    client = Client()
    client.force_login(user)
    if two_factor.two_factor_required(user=user):
        two_factor_login(client, user)
    return client


def totp_code(device: Any, *, step: int | None = None) -> str:
    """The code an authenticator app shows for ``device`` (at time step ``step``, default now)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if step is not None:
        totp.time = device.t0 + step * device.step
    return str(totp.token()).zfill(device.digits)


def two_factor_login(client: Client, user: Any) -> None:
    """Pass the second factor for a client logged in with the password alone: enrol a TOTP device if the
    user has none, then enter its code. A device accepts each time step once, so a further login within
    the same 30 s uses the next step (accepted within the device's tolerance), then a recovery code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    now = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).t()
    step = max(now, device.last_t + 1)
    if step <= now + device.tolerance:
        code = totp_code(device, step=step)
    else:
        recovery, _ = StaticDevice.objects.get_or_create(user=user, name="recovery codes", confirmed=True)
        code = recovery.token_set.create(token=f"test{recovery.token_set.count():04d}").token

    response = client.post(reverse("admin:two_factor_verify"), {"code": code})

    if response.status_code != 302 or "/two-factor/" in response["Location"]:
        raise AssertionError(f"the second factor was refused: {response.status_code}")
