"""End-to-end browser tests of the admin (headless chromium): log in with a password and a TOTP code, pay a
held order after its confirmation page shows the recipient, see it paid. Screenshots go to the temporary
directory (admin-confirm-pay.png, admin-paid.png, admin-order-history.png, admin-enrol.png)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import re
import shutil
import struct
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.utils import timezone
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


# The data migrations that make or widen the staff roles, in the order they run, each with its forward step.
ROLE_MIGRATIONS = [
    ("orders.migrations.0009_staff_roles_actions", "set_roles"),
    ("provision.migrations.0005_settings_role", "add_roles"),  # every role sees notifications, heartbeats...
    ("orders.migrations.0012_payer_books_balance_drift", "grant"),
]


def staff_role(name: str) -> Group:
    """The role as the data migrations left it. A transactional test empties the tables when it ends, the
    migrations' rows with them, and one may have run before this one: the roles are made again if so."""
    for module, step in ROLE_MIGRATIONS:
        getattr(importlib.import_module(module), step)(django_apps, None)
    return Group.objects.get(name=name)


def totp_now(base32_key: str) -> str:
    """The code an authenticator app shows now for this key (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits)."""
    key = base64.b32decode(base32_key.replace(" ", ""))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


# Reports every Content-Security-Policy violation of every page as a console error (collected below).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


class Browser:
    """A chromium page that records console errors (CSP violations among them) and each answer's CSP."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base_url = base_url
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.policies: dict[str, str | None] = {}
        self.failed: list[str] = []
        self.page.add_init_script(CSP_LISTENER)
        self.page.on("console", self.console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("response", self.record)

    def console(self, message: Any) -> None:
        # The browser asks every site for /favicon.ico on its own; the node serves none (not a page error).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def record(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")
        if response.request.resource_type == "document":
            self.policies[response.url] = response.headers.get("content-security-policy")

    def visit(self, path: str) -> Any:
        response = self.page.goto(f"{self.base_url}{path}")
        assert response is not None
        assert response.status == 200, (path, response.status)
        return response


# The admin pages ops use, beyond the ones a test walks through by clicking.
OPS_PAGES = [
    "/admin/",
    "/admin/orders/order/",
    "/admin/orders/order/?status__exact=held",
    "/admin/orders/outboxmessage/",
    "/admin/balances/balance/",
    "/admin/balances/ledgerentry/",
    "/admin/psp/transfer/",
    "/admin/psp/pspcircuit/",
    "/admin/psp/webhookevent/",
    "/admin/two-factor/",
    "/admin/password_change/",
]


def assert_csp_held(browser: Browser) -> None:
    """Every page came with the policy, and nothing on any of them broke it (or logged an error)."""
    assert browser.policies, "no page loaded"
    missing = sorted(
        url for url, policy in browser.policies.items() if not policy or "script-src" not in policy
    )
    assert missing == []
    assert (browser.errors, browser.failed) == ([], [])


def test_payer_logs_in_pays_a_held_order_and_sees_it_paid(live_server: Any, settings: Any) -> None:
    from playwright.sync_api import sync_playwright

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    user = User.objects.create_user(username="pat", password="a-long-test-password", is_staff=True)
    user.groups.add(staff_role("payer"))
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    order = held_order(amount=Decimal("4200"))
    other = held_order(amount=Decimal("1200"))
    Order.objects.filter(pk=order.pk).update(hold_until=timezone.now() + timedelta(minutes=10))

    with sync_playwright() as p:  # Playwright gives the browser a fresh temporary profile
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            tab = Browser(browser, live_server.url)
            page = tab.page
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
            # The confirmation page: what is about to be paid, order by order (nothing paid yet).
            row = page.locator(f"tr.confirm-row[data-order='{order.order_id}']")
            confirm = {
                name: row.locator(f"td.confirm-{name}").inner_text()
                for name in ("recipient", "account", "institution", "amount", "time-left", "balance-after")
            }
            page.screenshot(path=os.path.join(tempfile.gettempdir(), "admin-confirm-pay.png"), full_page=True)
            page.click("input[name=apply]")

            message = page.locator("ul.messagelist li").first.inner_text()
            page.screenshot(path=os.path.join(tempfile.gettempdir(), "admin-paid.png"))

            tab.visit(f"/admin/orders/order/{order.pk}/history/")  # who approved it, in admin's history
            history = page.locator("#change-history").inner_text()
            page.screenshot(
                path=os.path.join(tempfile.gettempdir(), "admin-order-history.png"), full_page=True
            )

            tab.visit(f"/admin/orders/order/{other.pk}/change/")
            page.click("a.transition-button[data-action=mark_paid]")  # a per-order action page with a form
            assert page.locator("#id_external_reference").count() == 1
            for path in [*OPS_PAGES, "/admin/orders/order/import-status/"]:
                tab.visit(path)
        finally:
            browser.close()

    assert "Started payout of 1 order(s)." in message
    assert "pat" in history
    assert "Approved the payout through the PSP, now paying" in history
    assert confirm["recipient"] == order.account_name
    assert (confirm["account"], confirm["amount"]) == ("******6789", "4,200.00 NGN")
    assert confirm["institution"].startswith("ABNGNGLA")
    assert re.fullmatch(r"\d min \d\d s", confirm["time-left"])
    assert confirm["balance-after"] == "195,800.00 NGN"  # two held orders credited 100,000 each
    assert_csp_held(tab)
    run_lane()  # the payout lane sends it
    order.refresh_from_db()
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    assert Order.objects.get(pk=order.pk).approved_by == user


def test_operator_enrols_an_authenticator_at_first_login_and_works_under_the_csp(live_server: Any) -> None:
    from playwright.sync_api import sync_playwright

    user = User.objects.create_user(username="olga", password="a-long-test-password", is_staff=True)
    user.groups.add(staff_role("operator"))
    order = held_order(amount=Decimal("4200"))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            tab = Browser(browser, live_server.url)
            page = tab.page
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "olga")
            page.fill("#id_password", "a-long-test-password")
            page.click("input[type=submit]")
            assert "/admin/two-factor/" in page.url  # no device yet: enrol first
            assert page.locator(".two-factor-qr svg").count() == 1
            page.screenshot(path=os.path.join(tempfile.gettempdir(), "admin-enrol.png"))
            key = page.locator("#two-factor-key").inner_text()  # what a person types into the app
            page.fill("#id_code", totp_now(key))
            page.click("input[type=submit]")
            codes = page.locator("ul.recovery-codes code").all_inner_texts()
            page.click("text=I have saved them: continue")
            assert "Payouts held for approval" in page.content()

            tab.visit(f"/admin/orders/order/{order.pk}/change/")
            page.click("a.transition-button[data-action=cancel_orders]")
            page.fill("#id_reason", "Recipient asked to stop")
            page.click("input[name=apply]")
            message = page.locator("ul.messagelist li").first.inner_text()
            for path in OPS_PAGES:
                tab.visit(path)
        finally:
            browser.close()

    assert len(codes) == 10
    assert "Cancelled 1 order(s)." in message
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert TOTPDevice.objects.get(user=user).confirmed is True
    assert_csp_held(tab)
