"""The balance sync (the payout lane's, ``orders.workflow.balances_sync_psp``) reads the sandbox's and
Lenco's balances into PspBalance with the drift from the ledger; it never writes a ledger entry, and a
ledger movement its PSP readings could not have seen is never counted as drift.

Contract change (issue 19): these tests used to assert the ADJUST entries a sync wrote to move the ledger to
the readings. A sync now records the readings and the drift; the book changes only when staff book it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from balances import selectors as balance_selectors
from balances import services as balance_services
from balances.models import EntryKind, LedgerEntry, PspBalance
from orders import services as order_services
from orders import workflow
from orders.models import OrderStatus, OutboxMessage
from provision.testing import run_together
from psp import registry
from psp import services as psp_services
from psp.models import PspRoute, Transfer
from psp.tests.helpers import JSON, LENCO_REF_1, accepted_order, fixture, paying_transfer

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


def balances_sync() -> int:
    """Sync every enabled PSP's balances, as the payout lane does; how many readings were applied."""
    return sum(len(workflow.balances_sync_psp(psp=adapter.name) or []) for adapter in registry.enabled())


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


def drift(currency: str) -> Decimal:
    found = balance_selectors.balance_drift(currency=currency)
    assert found is not None
    return found.amount


def test_balances_sync_records_sandbox_and_lenco_balances_and_the_drift_and_writes_no_ledger_entry(
    sandbox_and_lenco: HTTPServer,
) -> None:
    serve_accounts(sandbox_and_lenco)

    synced = balances_sync()

    assert synced == 3
    assert psp_balances() == [
        ("lenco", "NGN", Decimal("2600000.75"), Decimal("2500000.50")),
        ("sandbox", "KES", Decimal("2000000"), Decimal("2000000")),
        ("sandbox", "NGN", Decimal("50000000"), Decimal("50000000")),
    ]
    assert LedgerEntry.objects.count() == 0
    assert (drift("NGN"), drift("KES")) == (Decimal("52600000.75"), Decimal("2000000"))
    assert PspBalance.objects.get(psp="lenco", currency="NGN").drift == Decimal("52600000.75")
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("0")
    assert sorted(OutboxMessage.objects.filter(kind="balances").values_list("dedupe_key", flat=True)) == [
        "balances:KES:pending",
        "balances:NGN:pending",
    ]


def open_book(currency: str, amount: str) -> None:
    """The opening balance a staff user would book: what the PSPs hold."""
    balance_services.balance_credit(currency=currency, amount=Decimal(amount), reason="opening")


def test_second_sync_with_unchanged_balances_shows_the_same_drift(sandbox_and_lenco: HTTPServer) -> None:
    serve_accounts(sandbox_and_lenco)
    open_book("NGN", "52600000")
    balances_sync()

    balances_sync()

    assert adjustments() == []
    assert drift("NGN") == Decimal("0.75")
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("52600000")


def test_lenco_outage_skips_lenco_and_still_syncs_the_sandbox(sandbox_and_lenco: HTTPServer) -> None:
    sandbox_and_lenco.expect_request("/v1/accounts").respond_with_data(
        json.dumps({"status": False, "message": "down"}), status=503, content_type=JSON
    )

    synced = balances_sync()

    assert synced == 2
    assert [row[:2] for row in psp_balances()] == [("sandbox", "KES"), ("sandbox", "NGN")]
    assert drift("NGN") == Decimal("50000000")


def lenco_down(server: HTTPServer) -> None:
    server.clear_all_handlers()
    server.expect_request("/v1/accounts").respond_with_data(
        json.dumps({"status": False, "message": "down"}), status=503, content_type=JSON
    )


def balance_figures(currency: str) -> tuple[Decimal, Decimal]:
    balance = balance_selectors.balance_get(currency=currency)
    return balance.total, balance.reserved


@pytest.mark.django_db(transaction=True)  # the payout commits in another connection, during the read
def test_a_lenco_payout_confirmed_while_lenco_is_read_stays_debited(
    settings: Any, lenco_fake: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PSP = ["lenco"]
    settings.CURRENCIES = ["NGN"]
    serve_accounts(lenco_fake)  # 2,600,000.75 NGN, the 15,000 payout not yet out of the account
    lenco_fake.expect_request(f"/v1/transfer/by-reference/{LENCO_REF_1}").respond_with_data(
        fixture("lenco", "v1_transfer_successful.json"), content_type=JSON
    )
    transfer = paying_transfer(psp="lenco", reference=LENCO_REF_1, amount="15000")  # funds: 100,000
    open_book("NGN", "2500000.75")  # the book agrees with Lenco before the payout
    read = psp_services.psp_balances_read

    def read_then_confirm_the_payout(*, psp: str) -> Any:
        readings = read(psp=psp)
        [status] = run_together([lambda: workflow.payout_step(transfer_pk=transfer.pk)])
        assert status == OrderStatus.PAID
        return readings

    monkeypatch.setattr(psp_services, "psp_balances_read", read_then_confirm_the_payout)

    balances_sync()

    transfer.order.refresh_from_db()
    assert transfer.order.status == OrderStatus.PAID
    assert balance_figures("NGN") == (Decimal("2585000.75"), Decimal("0"))
    assert LedgerEntry.objects.filter(order=transfer.order, kind=EntryKind.DEBIT).count() == 1
    assert drift("NGN") == Decimal("0")  # the debit entered after the read is not a difference
    assert adjustments() == []
    assert balance_services.balance_verify() == []


def test_a_sandbox_payout_after_the_sandbox_was_read_survives_the_lenco_retry(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    settings.PSP = ["sandbox", "lenco"]
    settings.CURRENCIES = ["NGN"]
    settings.SANDBOX_BALANCES = {"NGN": Decimal("50000000")}
    PspRoute.objects.filter(currency="NGN", psp="lenco").update(enabled=False)  # the sandbox pays NGN
    order = accepted_order(amount="15000", funds="52600000.75")  # the book agrees with both PSPs
    lenco_down(lenco_fake)
    balances_sync()  # the sandbox's 50,000,000 is read; Lenco's read fails
    order_services.order_start_payout(order_pk=order.pk)
    workflow.payout_step(transfer_pk=Transfer.objects.get(order=order).pk)  # the sandbox pays 15,000
    lenco_fake.clear_all_handlers()
    serve_accounts(lenco_fake)

    assert workflow.balances_sync_psp(psp="lenco") == ["NGN"]

    # 50,000,000 read before the payout - 15,000 paid since + Lenco's 2,600,000.75: the ledger agrees
    assert balance_figures("NGN") == (Decimal("52585000.75"), Decimal("0"))
    assert drift("NGN") == Decimal("0")
    balances_sync()  # the sandbox now reads 49,985,000: still no drift
    assert drift("NGN") == Decimal("0")
    assert adjustments() == []
    assert balance_figures("NGN") == (Decimal("52585000.75"), Decimal("0"))
    assert balance_services.balance_verify() == []


def test_syncs_of_two_psps_that_overlap_count_each_psp_once(
    settings: Any, lenco_fake: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PSP = ["sandbox", "lenco"]
    settings.CURRENCIES = ["NGN"]
    settings.SANDBOX_BALANCES = {"NGN": Decimal("50000000")}
    serve_accounts(lenco_fake)
    read = psp_services.psp_balances_read

    def lenco_read_while_the_sandbox_is_synced(*, psp: str) -> Any:
        readings = read(psp=psp)
        if psp == "lenco":  # another worker syncs the sandbox before this one applies Lenco's figure
            monkeypatch.setattr(psp_services, "psp_balances_read", read)
            settings.PSP = ["sandbox"]
            balances_sync()
            settings.PSP = ["sandbox", "lenco"]
        return readings

    settings.PSP = ["lenco"]
    monkeypatch.setattr(psp_services, "psp_balances_read", lenco_read_while_the_sandbox_is_synced)
    open_book("NGN", "52600000.75")

    balances_sync()

    assert drift("NGN") == Decimal("0")  # each PSP counted once
    assert balance_figures("NGN") == (Decimal("52600000.75"), Decimal("0"))
    assert balance_services.balance_verify() == []
