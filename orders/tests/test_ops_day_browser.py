"""An ops day in a real browser (headless chromium, 1366 px): the walk-through of issue 19's "Done when".

The node runs in manual mode with the ``hold`` policy, as a new provider starts. The aggregator (the
project's simulator, on loopback) offers an order to the live server; the node decides, accepts and holds
it on its own (one pass of the lane, run by the test), and records the notification in that transaction.
Then one person who runs the node (operator and payer, with a TOTP code) works through the day: the health
strip and "Waiting for you", the order page, paying it through its confirmation page (recipient, name
check, account, institution, amount, time left, balance after), the notification in *Provision →
Notifications*, the balances page, a CSV export of the orders, pause and resume from the strip's one
button, and every action in the order's and the switch's History and in Recent actions. The amount is
under ``MAKER_CHECKER_ABOVE``, so one person may pay it (above it a second user would have to).

The sandbox PSP pays in the lane, which does not run beside the live server after that pass: the order
stays "paying", as a person sees it until the lane sends the transfer. Every page is checked against the
CSP. Screenshots of each page, in walk order, go to ``var/artefacts/ops-day/`` (git-ignored, as all of
var/).
"""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_q.models import Success

from balances import services as balance_services
from devtools.aggregator_sim import AggregatorSimulator
from orders import payout_lane
from orders.models import Order, OrderStatus
from orders.tests.test_admin_browser import CHROMIUM, FLAGS, Browser, assert_csp_held, staff_role, totp_now
from provision.models import Heartbeat, NodeControl, Notification, NotificationKind
from psp import registry

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)"
    ),
]

ARTEFACTS = Path(django_settings.BASE_DIR) / "var" / "artefacts" / "ops-day"
RECIPIENT = "Chiamaka Eze"
ACCOUNT = "0123456789"  # the sandbox pays it


@pytest.fixture
def aggregator(live_server: Any, settings: Any) -> Iterator[AggregatorSimulator]:
    """The simulator as the node's aggregator; it offers orders to the live server as the real one does."""
    with AggregatorSimulator(
        client_id=settings.AGGREGATOR_CLIENT_ID, secret=settings.AGGREGATOR_SECRET_KEY
    ) as sim:
        settings.AGGREGATOR_BASE_URL = sim.base_url
        settings.AGGREGATOR_READ_TIMEOUT = Decimal("5")
        sim.node_url = live_server.url
        yield sim


@pytest.fixture
def sandbox(settings: Any) -> Iterator[None]:
    settings.PSP = ["sandbox"]
    settings.SANDBOX_LATENCY_SECONDS = 0
    registry.adapter.cache_clear()
    yield
    registry.adapter.cache_clear()


def shoot(page: Any, name: str) -> None:
    """Save the page as ``var/artefacts/ops-day/<name>.png`` (device scale 1: small enough for the docs)."""
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def test_an_ops_day_in_manual_mode_from_the_held_order_to_the_history(
    live_server: Any, aggregator: AggregatorSimulator, sandbox: None, settings: Any
) -> None:
    from playwright.sync_api import sync_playwright

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    settings.PROVISION_MODE = "manual"
    settings.MANUAL_POLICY = "hold"
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000000")}
    settings.PAYOUT_NAME_CHECK = "warn"
    settings.NOTIFY_EMAIL_TO = ["ops@provider.example"]
    settings.ADMIN_BASE_URL = live_server.url
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTEFACTS.glob("*.png"):
        old.unlink()
    user = User.objects.create_user(username="ada", password="a-long-test-password", is_staff=True)
    user.groups.add(staff_role("operator"), staff_role("payer"))
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    balance_services.balance_credit(currency="NGN", amount=Decimal("500000"), reason="funds")
    now = timezone.now()  # what the worker and the payout lane write while they run
    Success.objects.create(id="a" * 32, name="sweep", func="orders.tasks.sweep", started=now, stopped=now)
    Heartbeat.objects.create(name="payout_lane", beat_at=now)

    offered = aggregator.offer(
        "45000", account_identifier=ACCOUNT, account_name=RECIPIENT, memo="Invoice 118"
    )
    payout_lane.run_due_once()  # the lane decides the offer, accepts it and holds it
    order = Order.objects.get(order_id=offered.id)
    held_status = order.status
    notified = list(
        Notification.objects.filter(kind=NotificationKind.HELD, subject=str(order.pk)).values_list(
            "sent_at", flat=True
        )
    )
    mailed = [(message.subject, message.body) for message in mail.outbox]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            tab = Browser(browser, live_server.url)
            page = tab.page
            page.set_viewport_size({"width": 1366, "height": 900})
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "ada")
            page.fill("#id_password", "a-long-test-password")
            page.click("input[type=submit]")
            assert "/admin/two-factor/verify/" in page.url  # the password alone is not enough
            page.fill("#id_code", totp_now(base64.b32encode(device.bin_key).decode()))
            page.click("input[type=submit]")

            # Morning: the strip first, then the queue.
            strip = dict(
                page.locator("#health-strip a.health-item").evaluate_all(
                    "links => links.map(a => [a.dataset.item, a.className.split('health-').pop()])"
                )
            )
            mode_text = page.locator("#health-strip a[data-item=mode]").inner_text()
            queue_text = page.locator("#ops-queue").inner_text()
            shoot(page, "01-index")

            page.click(f"#ops-queue a[href$='/admin/orders/order/{order.pk}/change/']")
            order_text = page.locator("#content").inner_text()
            buttons = page.locator("a.transition-button").evaluate_all(
                "links => links.map(a => a.dataset.action)"
            )
            shoot(page, "02-order")

            page.click("a.transition-button[data-action=approve_payouts]")
            row = page.locator(f"tr.confirm-row[data-order='{order.order_id}']")
            confirm = {
                name: row.locator(f"td.confirm-{name}").inner_text()
                for name in (
                    "recipient",
                    "name-check",
                    "account",
                    "institution",
                    "amount",
                    "time-left",
                    "balance-after",
                )
            }
            shoot(page, "03-confirm-pay")
            page.click("input[name=apply]")
            paid_message = page.locator("ul.messagelist li").first.inner_text()
            tab.visit(f"/admin/orders/order/{order.pk}/change/")
            paying_status = page.locator(".field-status_badge .readonly").inner_text()
            shoot(page, "04-order-paying")

            tab.visit("/admin/")
            page.click("#content-main a[href$='/admin/provision/notification/']")
            notifications_text = page.locator("#result_list").inner_text()
            shoot(page, "05-notifications")

            tab.visit("/admin/balances/balance/reconciliation/")
            shoot(page, "06-balances")

            tab.visit("/admin/orders/order/")
            page.click("a.csv-export-link")
            shoot(page, "07-export")
            with page.expect_download() as download_info:
                page.click("input[type=submit][value='Download CSV']")
            exported = Path(download_info.value.path()).read_text()

            tab.visit("/admin/")
            page.fill("#health-strip input[name=reason]", "Bank holiday")
            page.click("#node-pause")
            paused_message = page.locator("ul.messagelist li").first.inner_text()
            paused_strip = page.locator("#health-strip a[data-item=node]").inner_text()
            shoot(page, "08-paused")
            page.click("#node-resume")
            resumed_strip = page.locator("#health-strip a[data-item=node]").inner_text()

            tab.visit(f"/admin/orders/order/{order.pk}/history/")
            order_history = page.locator("#change-history").inner_text()
            shoot(page, "09-order-history")
            tab.visit("/admin/provision/nodecontrol/1/history/")
            switch_history = page.locator("#change-history").inner_text()
            shoot(page, "10-switch-history")
            tab.visit("/admin/")
            recent_actions = page.locator("#recent-actions-module").inner_text()
            shoot(page, "11-recent-actions")
        finally:
            browser.close()

    # Held by the node itself (manual mode, hold policy), told once, by mail.
    assert held_status == OrderStatus.HELD
    assert len(notified) == 1
    assert notified[0] is not None  # sent
    assert [subject for subject, _ in mailed] == ["Provision node: Payout held for approval"]
    assert f"{live_server.url}/admin/orders/order/{order.pk}/change/" in mailed[0][1]
    assert "Payout held for approval" in notifications_text
    assert "45,000.00 NGN" in notifications_text
    # The strip and the queue.
    assert strip == {
        "node": "ok",
        "mode": "info",
        "worker": "ok",
        "payout_lane": "ok",
        "psp": "ok",
        "outbox": "ok",
        "tasks": "ok",
        "environment": "warn",
    }
    assert "manual (hold)" in mode_text
    assert "Payouts held for approval (1)" in queue_text
    assert "45,000.00 NGN" in queue_text
    # The order page leads with what to decide on, and offers the pay button.
    assert "Held for approval" in order_text
    assert RECIPIENT in order_text
    assert buttons == ["record_approval", "approve_payouts", "export_bank_file", "mark_paid", "cancel_orders"]
    # The confirmation page showed what is about to be paid.
    assert confirm["recipient"] == RECIPIENT
    assert confirm["name-check"].startswith("No doubt recorded; checked again through the PSP")
    assert confirm["account"] == "******6789"
    assert confirm["institution"].startswith("ABNGNGLA")
    assert confirm["amount"] == "45,000.00 NGN"
    assert re.fullmatch(r"[34] min \d\d s", confirm["time-left"]), confirm["time-left"]
    assert confirm["balance-after"] == "455,000.00 NGN"
    # Paid through the node's service path: the transfer is written; the lane (not running here) sends it.
    assert paid_message == "Started payout of 1 order(s)."
    assert paying_status == "Paying"
    order.refresh_from_db()
    assert (order.status, order.psp, order.approved_by) == (OrderStatus.PAYING, "sandbox", user)
    # The export holds the order as the list shows it.
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["order_id"], r["amount"], r["status"]) for r in rows] == [
        (order.order_id, "45000.00", "paying")
    ]
    # Pause and resume from the one button.
    assert paused_message == "Node paused: every new offer is declined."
    assert paused_strip == "Node paused: Bank holiday"
    assert resumed_strip == "Node running"
    assert NodeControl.objects.get(pk=1).paused is False
    # Every action is in History and in Recent actions, by this person.
    assert "ada\tApproved the payout through the PSP, now paying" in order_history
    assert "ada\tPaused: Bank holiday" in switch_history
    assert "ada\tResumed" in switch_history
    # Pay, pause, resume; the CSV export changes nothing and writes no history (docs/operations.md).
    assert list(
        LogEntry.objects.filter(user=user).order_by("pk").values_list("content_type__model", flat=True)
    ) == ["order", "nodecontrol", "nodecontrol"]
    assert f"{order.order_id} (paying)" in recent_actions
    assert recent_actions.count("Node control") == 2
    assert_csp_held(tab)
