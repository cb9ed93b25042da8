"""A PSP's balances are read by the payout lane every BALANCE_SYNC_INTERVAL; a read that fails is tried
again within seconds, with backoff, for that PSP only. (Since issue 19 a read records the PSP's figure and
the drift; the ledger changes only when a staff user books the drift.)"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_httpserver import HTTPServer

from balances import selectors as balance_selectors
from balances import services as balance_services
from orders import services as order_services
from orders import workflow
from orders.models import DeclineReason, OrderStatus
from orders.payout_lane import BalanceTimer, PayoutLane
from orders.tests.factories import OrderFactory
from psp.tests.helpers import JSON, fixture

LENCO_TOTAL = Decimal("2600000.75")  # v1 + v2 accounts of the Lenco fixtures, NGN


@pytest.fixture
def lenco_only(settings: Any, lenco_fake: HTTPServer) -> HTTPServer:
    settings.PSP = ["lenco"]
    settings.CURRENCIES = ["NGN"]
    settings.BALANCE_SYNC_INTERVAL = 300
    return lenco_fake


def lenco_down(server: HTTPServer) -> None:
    server.clear_all_handlers()
    server.expect_request("/v1/accounts").respond_with_data(
        json.dumps({"status": False, "message": "down"}), status=503, content_type=JSON
    )


def lenco_up(server: HTTPServer) -> None:
    server.clear_all_handlers()
    for version in ("v1", "v2"):
        server.expect_request(f"/{version}/accounts").respond_with_data(
            fixture("lenco", f"{version}_accounts.json"), content_type=JSON
        )


def decide_offer() -> tuple[str, str]:
    order = OrderFactory.create(amount=Decimal("15000"))
    order_services.order_decide(order_pk=order.pk)
    order.refresh_from_db()
    return order.status, order.decline_reason


@pytest.mark.django_db
def test_a_read_that_fails_is_tried_again_after_2_4_8_seconds_up_to_a_minute_until_the_regular_sync(
    lenco_only: HTTPServer,
) -> None:
    timer, now, gaps = BalanceTimer(), 1000.0, []
    for _ in range(12):
        assert timer.due_now(now) == ["lenco"]
        timer.done("lenco", ok=False, now=now)
        gaps.append(round(timer.due["lenco"] - now))
        now = timer.due["lenco"]

    assert gaps == [2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60, 60]

    timer.done("lenco", ok=True, now=now)

    assert timer.due_now(now + 299) == []
    assert timer.due_now(now + 300) == ["lenco"]


@pytest.mark.django_db
def test_the_sync_after_a_failed_read_records_the_drift_and_once_booked_offers_are_accepted(
    lenco_only: HTTPServer,
) -> None:
    # Contract change (issue 19): the sync used to set the ledger's total itself.
    lenco_down(lenco_only)
    assert workflow.balances_sync_psp(psp="lenco") is None  # at start-up: Lenco answers 503
    assert decide_offer() == (OrderStatus.DECLINED, DeclineReason.INSUFFICIENT_BALANCE)
    lenco_up(lenco_only)

    assert workflow.balances_sync_psp(psp="lenco") == ["NGN"]

    assert drift_now() == LENCO_TOTAL
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("0")
    balance_services.balance_drift_book(
        currency="NGN",
        expected=LENCO_TOTAL,
        reason="opening balance",
        actor=User.objects.create_user(username="ops", is_staff=True),
    )
    assert decide_offer() == (OrderStatus.ACCEPTING, "")


def drift_now() -> Decimal | None:
    found = balance_selectors.balance_drift(currency="NGN")
    return None if found is None else found.amount


@pytest.mark.django_db
def test_a_failed_psp_is_retried_alone_and_the_others_are_not_read_again_before_their_time(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    settings.PSP = ["sandbox", "lenco"]
    settings.BALANCE_SYNC_INTERVAL = 300
    timer, now = BalanceTimer(), 1000.0
    lenco_down(lenco_fake)

    for psp in timer.due_now(now):
        timer.done(psp, ok=workflow.balances_sync_psp(psp=psp) is not None, now=now)

    assert timer.due_now(now + 2) == ["lenco"]


# The lane's threads need a database other connections can write at once: the test run's SQLite is an
# in-memory database in shared-cache mode, whose table locks fail at once instead of waiting.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_payout_lane_reads_balances_at_start_and_again_seconds_after_a_failed_read(
    lenco_only: HTTPServer,
) -> None:
    lenco_down(lenco_only)
    stop = threading.Event()
    lane = threading.Thread(target=PayoutLane(threads=2, poll=0.05).run, args=(stop,), daemon=True)
    lane.start()
    try:
        deadline = time.monotonic() + 5
        while not [r for r, _ in lenco_only.log if r.path == "/v1/accounts"] and time.monotonic() < deadline:
            time.sleep(0.05)
        lenco_up(lenco_only)
        deadline = time.monotonic() + 10  # the retry is due 2 s after the failed read
        while drift_now() != LENCO_TOTAL:
            assert time.monotonic() < deadline, "the balance was not read again within seconds"
            time.sleep(0.1)
    finally:
        stop.set()
        lane.join(timeout=10)
    assert not lane.is_alive()
