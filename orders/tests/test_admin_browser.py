"""One end-to-end browser test of the admin: log in, pay a held order, see it paid (headless chromium)."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User

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
    roles = importlib.import_module("orders.migrations.0002_staff_roles").ROLES
    group, _ = Group.objects.get_or_create(name=name)
    for app_label, codename in roles[name]:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


def test_payer_logs_in_pays_a_held_order_and_sees_it_paid(live_server: Any, settings: Any) -> None:
    from playwright.sync_api import sync_playwright

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    user = User.objects.create_user(username="pat", password="a-long-test-password", is_staff=True)
    user.groups.add(staff_role("payer"))
    order = held_order(amount=Decimal("4200"))

    with sync_playwright() as p:  # Playwright gives the browser a fresh temporary profile
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "pat")
            page.fill("#id_password", "a-long-test-password")
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
