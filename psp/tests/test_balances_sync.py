"""orders.tasks.balances_sync reads the sandbox's and Lenco's balances into PspBalance and adjust entries."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from balances import selectors as balance_selectors
from balances.models import EntryKind, LedgerEntry, PspBalance
from orders import tasks as order_tasks
from orders.models import OutboxMessage
from psp.tests.helpers import JSON, fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_and_lenco(settings: Any, lenco_fake: HTTPServer) -> HTTPServer:
    settings.PSP = ["sandbox", "lenco"]
    settings.CURRENCIES = ["NGN", "KES"]
    settings.SANDBOX_BALANCES = {
        "NGN": Decimal("50000000"),
        "KES": Decimal("2000000"),
        "GHS": Decimal("1000"),
    }
    return lenco_fake


def serve_accounts(server: HTTPServer) -> None:
    server.expect_request("/v1/accounts").respond_with_data(
        fixture("lenco", "v1_accounts.json"), content_type=JSON
    )
    server.expect_request("/v2/accounts").respond_with_data(
        fixture("lenco", "v2_accounts.json"), content_type=JSON
    )


def psp_balances() -> list[tuple[str, str, Decimal, Decimal]]:
    return list(
        PspBalance.objects.order_by("psp", "currency").values_list("psp", "currency", "total", "available")
    )


def adjustments() -> list[tuple[str, str, Decimal]]:
    return list(
        LedgerEntry.objects.filter(kind=EntryKind.ADJUST)
        .order_by("pk")
        .values_list("balance__currency", "psp", "total_delta")
    )


def test_balances_sync_records_sandbox_and_lenco_balances_and_adjusts_the_totals(
    sandbox_and_lenco: HTTPServer,
) -> None:
    serve_accounts(sandbox_and_lenco)

    synced = order_tasks.balances_sync()

    assert synced == 3
    assert psp_balances() == [
        ("lenco", "NGN", Decimal("2600000.75"), Decimal("2500000.50")),
        ("sandbox", "KES", Decimal("2000000"), Decimal("2000000")),
        ("sandbox", "NGN", Decimal("50000000"), Decimal("50000000")),
    ]
    assert adjustments() == [
        ("NGN", "sandbox", Decimal("50000000")),
        ("KES", "sandbox", Decimal("2000000")),
        ("NGN", "lenco", Decimal("2600000.75")),
    ]
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("52600000.75")
    assert balance_selectors.balance_get(currency="KES").total == Decimal("2000000")
    assert sorted(OutboxMessage.objects.filter(kind="balances").values_list("dedupe_key", flat=True)) == [
        "balances:KES:pending",
        "balances:NGN:pending",
    ]


def test_second_sync_with_unchanged_balances_writes_no_adjustment(sandbox_and_lenco: HTTPServer) -> None:
    serve_accounts(sandbox_and_lenco)
    order_tasks.balances_sync()

    order_tasks.balances_sync()

    assert len(adjustments()) == 3
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("52600000.75")


def test_lenco_outage_skips_lenco_and_still_syncs_the_sandbox(sandbox_and_lenco: HTTPServer) -> None:
    sandbox_and_lenco.expect_request("/v1/accounts").respond_with_data(
        json.dumps({"status": False, "message": "down"}), status=503, content_type=JSON
    )

    synced = order_tasks.balances_sync()

    assert synced == 2
    assert [row[:2] for row in psp_balances()] == [("sandbox", "KES"), ("sandbox", "NGN")]
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("50000000")
