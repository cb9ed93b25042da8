"""A balance sync whose PSP read fails is retried within seconds, with backoff, for that PSP only.

These tests run django-q2 unsynchronised (as in production), so the queued retry can be read from the
ORM broker's table, with the time before which no cluster takes it.
"""

from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from pytest_httpserver import HTTPServer

from balances import selectors as balance_selectors
from orders import services as order_services
from orders import tasks as order_tasks
from orders.models import DeclineReason, OrderStatus
from orders.tests.factories import OrderFactory
from psp.tests.helpers import JSON, fixture

pytestmark = pytest.mark.django_db

RETRY = "orders.tasks.balances_sync_retry"


@pytest.fixture
def unsynced(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.fixture
def lenco_only(settings: Any, lenco_fake: HTTPServer, unsynced: None) -> HTTPServer:
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


def queued_retries() -> list[tuple[dict[str, Any], datetime]]:
    """(kwargs, not taken before) of each queued balance sync retry, oldest first."""
    rows = [(SignedPackage.loads(row.payload), row.lock) for row in OrmQ.objects.order_by("id")]
    return [(task["kwargs"], lock) for task, lock in rows if task["func"] == RETRY]


def run_queued_retry() -> str:
    """Run the newest queued retry the way the cluster would (its task, with its kwargs), and unqueue it."""
    row = max(
        (row for row in OrmQ.objects.all() if SignedPackage.loads(row.payload)["func"] == RETRY),
        key=lambda row: row.pk,
    )
    kwargs = SignedPackage.loads(row.payload)["kwargs"]
    row.delete()
    return order_tasks.balances_sync_retry(**kwargs)


def decide_offer() -> tuple[str, str]:
    order = OrderFactory.create(amount=Decimal("15000"))
    order_services.order_decide(order_pk=order.pk)
    order.refresh_from_db()
    return order.status, order.decline_reason


def test_a_sync_whose_psp_answers_5xx_queues_a_retry_of_that_psp_two_seconds_later(
    lenco_only: HTTPServer,
) -> None:
    lenco_down(lenco_only)
    before = timezone.now()

    order_tasks.balances_sync()

    after = timezone.now()
    [(kwargs, not_before)] = queued_retries()
    assert kwargs == {"psp": "lenco", "attempt": 1}
    assert before + timedelta(seconds=2) <= not_before <= after + timedelta(seconds=2)


def test_the_retry_sets_the_balance_so_offers_are_no_longer_declined_for_insufficient_funds(
    lenco_only: HTTPServer,
) -> None:
    lenco_down(lenco_only)
    order_tasks.balances_sync()  # at start-up: Lenco answers 503, the node knows no funds
    assert decide_offer() == (OrderStatus.DECLINED, DeclineReason.INSUFFICIENT_BALANCE)
    lenco_up(lenco_only)

    outcome = run_queued_retry()

    assert outcome == "synced"
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("2600000.75")
    assert decide_offer() == (OrderStatus.ACCEPTING, "")
    assert queued_retries() == []


def test_a_retry_that_fails_again_backs_off_doubling_up_to_a_minute_until_the_regular_sync_is_due(
    lenco_only: HTTPServer,
) -> None:
    lenco_down(lenco_only)
    order_tasks.balances_sync()
    retries: list[tuple[int, int]] = []

    while queued_retries():
        [(kwargs, not_before)] = queued_retries()
        retries.append((kwargs["attempt"], round((not_before - timezone.now()).total_seconds())))
        assert run_queued_retry() == "failed"

    # 2 + 4 + 8 + 16 + 32 + 60 + 60 + 60 = 242 s; one more minute would reach the sync due at 300 s.
    assert retries == [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (7, 60), (8, 60)]
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("0")


def test_a_failed_psp_is_retried_alone_and_the_others_are_synced_at_once(
    settings: Any, lenco_fake: HTTPServer, unsynced: None
) -> None:
    settings.PSP = ["sandbox", "lenco"]
    settings.CURRENCIES = ["NGN"]
    settings.SANDBOX_BALANCES = {"NGN": Decimal("50000000")}
    lenco_down(lenco_fake)

    synced = order_tasks.balances_sync()

    assert synced == 1
    assert [kwargs for kwargs, _ in queued_retries()] == [{"psp": "lenco", "attempt": 1}]
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("50000000")


def test_where_the_queue_cannot_hold_a_task_the_retry_is_a_one_off_schedule(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    from django_q.models import Schedule

    settings.PSP = ["lenco"]
    settings.CURRENCIES = ["NGN"]
    lenco_down(lenco_fake)  # django-q2's sync mode here: a queued task would run at once
    before = timezone.now()

    order_tasks.balances_sync()

    schedule = Schedule.objects.get(name="balances_sync_retry:lenco")
    assert (schedule.func, schedule.schedule_type) == (RETRY, Schedule.ONCE)
    assert ast.literal_eval(schedule.kwargs) == {"psp": "lenco", "attempt": 1}  # as the scheduler reads it
    assert before + timedelta(seconds=2) <= schedule.next_run <= timezone.now() + timedelta(seconds=2)
    assert queued_retries() == []
