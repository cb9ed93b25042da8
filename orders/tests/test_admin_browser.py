"""End-to-end browser tests of the admin (headless chromium): log in with a password and a TOTP code, pay a
held order, see it paid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import shutil
import struct
import tempfile
import time
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.models import Order, OrderStatus
from orders.tests.test_admin import held_order
from psp.tests.helpers import run_lane

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)"
    ),
]
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def staff_role(name: str) -> Group:
    """The role as the data migration made it. A transactional test empties the tables when it ends, the
    migration's rows with them, and one may have run before this one: the role is made again if so."""
    roles = importlib.import_module("orders.migrations.0009_staff_roles_actions")
    group, _ = Group.objects.get_or_create(name=name)
    group.permissions.set([roles.permission(django_apps, *grant) for grant in roles.ROLES[name]])
    return group


def totp_now(base32_key: str) -> str:
    """The code an authenticator app shows now for this key (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits)."""
    key = base64.b32decode(base32_key.replace(" ", ""))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def test_payer_logs_in_pays_a_held_order_and_sees_it_paid(live_server: Any, settings: Any) -> None:
    from playwright.sync_api import sync_playwright

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    user = User.objects.create_user(username="pat", password="a-long-test-password", is_staff=True)
    user.groups.add(staff_role("payer"))
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    order = held_order(amount=Decimal("4200"))

    with sync_playwright() as p:  # Playwright gives the browser a fresh temporary profile
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "pat")
            page.fill("#id_password", "a-long-test-password")
            page.click("input[type=submit]")
            assert "/admin/two-factor/verify/" in page.url  # the password alone is not enough
            page.fill("#id_code", totp_now(base64.b32encode(device.bin_key).decode()))
            page.click("input[type=submit]")
            assert "Payouts held for approval" in page.content()

            page.goto(f"{live_server.url}/admin/orders/order/?status__exact=held")
            page.check(f"input[name=_selected_action][value='{order.pk}']")
            page.select_option("select[name=action]", "approve_payouts")
            page.click("button[name=index]")

            message = page.locator("ul.messagelist li").first.inner_text()
            page.screenshot(path=os.path.join(tempfile.gettempdir(), "admin-paid.png"))
        finally:
            browser.close()

    assert "Started payout of 1 order(s)." in message
    run_lane()  # the payout lane sends it
    order.refresh_from_db()
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    assert Order.objects.get(pk=order.pk).approved_by == user
