"""A viewer reads money and reconciles in a real browser (headless chromium): the order list and page, a
CSV export of the filtered list, the balances page and the financial report, all under the CSP
(issue 19, items 5 and 6). Screenshots of each page land in the temporary directory as test artefacts."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from balances import selectors as balance_selectors
from balances import services as balance_services
from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from orders.tests.test_admin_browser import CHROMIUM, FLAGS, Browser, assert_csp_held, staff_role
from psp.tests.factories import TransferFactory

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)"
    ),
]


def screenshot(page: Any, name: str) -> None:
    page.screenshot(path=os.path.join(tempfile.gettempdir(), f"admin-money-{name}.png"), full_page=True)


def test_viewer_exports_the_held_orders_and_reads_the_balances_page_and_the_report(live_server: Any) -> None:
    from playwright.sync_api import sync_playwright

    user = User.objects.create_user(username="vera", password="a-long-test-password", is_staff=True)
    user.groups.add(staff_role("viewer"))
    balance_services.balance_credit(currency="NGN", amount=Decimal("1000000"), reason="funds")
    seq = balance_selectors.ledger_seqs(currencies=["NGN"])["NGN"]
    balance_services.balance_sync_psp(
        psp="sandbox",
        currency="NGN",
        total=Decimal("1000000"),
        available=Decimal("1000000"),
        ledger_seq_at_read=seq,
    )
    now = timezone.now()
    held = OrderFactory.create(amount=Decimal("40000"), account_name='=HYPERLINK("x")')
    Order.objects.filter(pk=held.pk).update(status=OrderStatus.HELD, hold_until=now + timedelta(seconds=40))
    cancelled = OrderFactory.create(amount=Decimal("1250"))
    Order.objects.filter(pk=cancelled.pk).update(status=OrderStatus.CANCELLED)
    paid = OrderFactory.create(amount=Decimal("12500.5"))
    Order.objects.filter(pk=paid.pk).update(status=OrderStatus.FULFILLED, paid_at=now, psp="sandbox")
    TransferFactory.create(order=paid, fee=Decimal("35"))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            tab = Browser(browser, live_server.url)
            page = tab.page
            page.set_viewport_size({"width": 1366, "height": 900})
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "vera")
            page.fill("#id_password", "a-long-test-password")
            page.click("input[type=submit]")
            assert "/admin/two-factor/" not in page.url  # a viewer needs no second factor
            index_text = page.locator("#ops-queue").inner_text()
            screenshot(page, "index")

            tab.visit("/admin/orders/order/")
            list_text = page.locator("#result_list").inner_text()
            screenshot(page, "order-list")
            tab.visit(f"/admin/orders/order/{held.pk}/change/")
            screenshot(page, "order-page")
            title_box = page.locator("#content h1, #content h2").first.bounding_box()
            tools_box = page.locator("#content .object-tools").first.bounding_box()

            tab.visit("/admin/orders/order/?status__exact=held")
            page.click("a.csv-export-link")
            screenshot(page, "export")
            with page.expect_download() as download_info:
                page.click("input[type=submit][value='Download CSV']")
            exported = Path(download_info.value.path()).read_text()

            tab.visit("/admin/balances/balance/")
            page.click("text=Node vs PSP")
            reconciliation_text = page.locator("#reconciliation").inner_text()
            screenshot(page, "balances")

            tab.visit("/admin/orders/order/")
            page.click("text=Financial report")
            report_text = page.locator("#report-totals").inner_text()
            screenshot(page, "report")
            tab.visit("/admin/balances/ledgerentry/")
            screenshot(page, "ledger")
        finally:
            browser.close()

    assert "40,000.00 NGN" in index_text
    assert "s left" in index_text
    assert "40,000.00 NGN" in list_text
    assert "1,250.00 NGN" in list_text
    assert title_box is not None
    assert tools_box is not None
    assert tools_box["y"] >= title_box["y"] + title_box["height"]  # the actions sit under the title
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["order_id"], r["amount"], r["account_name"]) for r in rows] == [
        (held.order_id, "40000.00", '\'=HYPERLINK("x")')
    ]
    assert "sandbox" in reconciliation_text
    assert "1,000,000.00 NGN" in reconciliation_text
    assert "12,500.50 NGN" in report_text
    assert "35.00 NGN" in report_text
    assert_csp_held(tab)
