"""The ops console in a real browser (headless chromium): the health strip on every page, a refused call to
the aggregator in "Waiting for you", pausing and resuming from one button, a notification recorded, and a
runtime setting changed with its old and new value in History. Screenshots land in the temp directory
(console-index.png, console-paused.png, console-settings-history.png)."""

from __future__ import annotations

import base64
import importlib
import os
import tempfile
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_q.models import Success

from orders.models import OutboxKind, OutboxMessage, OutboxStatus
from orders.tests.factories import OrderFactory
from orders.tests.test_admin import held_order
from orders.tests.test_admin_browser import CHROMIUM, FLAGS, Browser, assert_csp_held, staff_role, totp_now
from provision import notify
from provision.models import Heartbeat, NodeControl, Notification, NotificationKind

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)"
    ),
]


def settings_role() -> Group:
    """The settings role as its data migration makes it (a transactional test may have emptied it)."""
    migration = importlib.import_module("provision.migrations.0005_settings_role")
    group, _ = Group.objects.get_or_create(name="settings")
    group.permissions.set([migration.permission(django_apps, *grant) for grant in migration.SETTINGS_ROLE])
    return group


def screenshot(page: Any, name: str) -> None:
    page.screenshot(path=os.path.join(tempfile.gettempdir(), name), full_page=True)


def test_an_ops_person_reads_the_strip_pauses_the_node_and_changes_a_setting(
    live_server: Any, settings: Any
) -> None:
    from playwright.sync_api import sync_playwright

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    user = User.objects.create_user(username="olga", password="a-long-test-password", is_staff=True)
    user.groups.add(staff_role("operator"), settings_role())
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    now = timezone.now()
    Success.objects.create(id="a" * 32, name="sweep", func="orders.tasks.sweep", started=now, stopped=now)
    Heartbeat.objects.create(name="payout_lane", beat_at=now)
    held = held_order(amount=Decimal("4200"))
    cancelled = OrderFactory.create()
    refused = OutboxMessage.objects.create(
        kind=OutboxKind.CANCEL,
        order=cancelled,
        dedupe_key=f"cancel:{cancelled.order_id}",
        path=f"orders/{cancelled.order_id}/cancel",
        payload={"reason": "Held too long"},
        status=OutboxStatus.REFUSED,
        last_status_code=404,
        last_error="HTTP 404: order not found",
    )
    notify.notifications_watch()  # what the worker's minute scan does

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            tab = Browser(browser, live_server.url)
            page = tab.page
            page.set_viewport_size({"width": 1366, "height": 900})
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "olga")
            page.fill("#id_password", "a-long-test-password")
            page.click("input[type=submit]")
            page.fill("#id_code", totp_now(base64.b32encode(device.bin_key).decode()))
            page.click("input[type=submit]")

            strip = page.locator("#health-strip")
            items = strip.locator("a.health-item").evaluate_all(
                "links => links.map(a => [a.dataset.item, a.className.split('health-').pop()])"
            )
            queue = page.locator("#ops-queue").inner_text()
            screenshot(page, "console-index.png")

            page.click(f"#ops-attention a[href$='/admin/orders/outboxmessage/{refused.pk}/change/']")
            outbox_page = page.url

            page.fill("#health-strip input[name=reason]", "Bank holiday")
            page.click("#node-pause")
            paused_message = page.locator("ul.messagelist li").first.inner_text()
            paused_strip = page.locator("#health-strip a[data-item=node]").inner_text()
            screenshot(page, "console-paused.png")
            page.click("#node-resume")
            resumed_strip = page.locator("#health-strip a[data-item=node]").inner_text()

            tab.visit("/admin/provision/notification/")
            notifications = page.locator("#result_list").inner_text()

            tab.visit("/admin/provision/nodesettings/")
            page.fill("#id_manual_approval_timeout", "120")
            page.click("input[name=_save]")
            tab.visit("/admin/provision/nodesettings/1/history/")
            history = page.locator("#change-history").inner_text()
            screenshot(page, "console-settings-history.png")
            for path in (
                "/admin/provision/heartbeat/",
                "/admin/provision/nodecontrol/",
                "/admin/psp/psproute/",
            ):
                tab.visit(path)
        finally:
            browser.close()

    assert items == [
        ["node", "ok"],
        ["mode", "info"],
        ["worker", "ok"],
        ["payout_lane", "ok"],
        ["psp", "ok"],
        ["outbox", "bad"],
        ["tasks", "ok"],
        ["environment", "warn"],
    ]
    assert "Payouts held for approval (1)" in queue
    assert "Refused cancel" in queue
    assert "HTTP 404" in queue
    assert outbox_page.endswith(f"/admin/orders/outboxmessage/{refused.pk}/change/")
    assert paused_message == "Node paused: every new offer is declined."
    assert paused_strip == "Node paused: Bank holiday"
    assert resumed_strip == "Node running"
    assert NodeControl.objects.get(pk=1).paused is False
    assert held.order_id[:8] in notifications or "Payout held for approval" in notifications
    assert Notification.objects.filter(kind=NotificationKind.HELD, subject=str(held.pk)).count() == 1
    assert "manual_approval_timeout: (environment: 240) -> 120" in history
    assert_csp_held(tab)
