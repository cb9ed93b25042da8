"""Paystack through the node's own services, webhook view and payout lane, against the real-HTTP fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from pytest_httpserver import HTTPServer

from balances import selectors as balance_selectors
from balances import services as balance_services
from orders import services as order_services
from orders.models import Order, OrderStatus
from provision import health as readiness
from psp import registry
from psp import services as psp_services
from psp.models import InstitutionMapping, PspRecipient, Transfer, TransferStatus, WebhookEvent
from psp.tests.conformance.fakes.paystack import PaystackFake
from psp.tests.conformance.kit import Callback, Send, Status
from psp.tests.helpers import accepted_order, fulfil_statuses, run_lane

pytestmark = pytest.mark.django_db

GCB = "GHCBGHAC"
GCB_ACCOUNT = "1441000123456"


@pytest.fixture
def fake(settings: Any, httpserver: HTTPServer) -> Iterator[PaystackFake]:
    paystack = PaystackFake(httpserver)
    paystack.install()
    for name, value in paystack.node_settings().items():
        setattr(settings, name, value)
    settings.PSP = ["paystack"]
    settings.CURRENCIES = ["NGN", "GHS"]
    InstitutionMapping.objects.create(
        psp="paystack", currency="GHS", institution=GCB, psp_code="ghipss:GH040100"
    )
    for institution, code in paystack.institution_mappings():
        InstitutionMapping.objects.create(
            psp="paystack", currency="NGN", institution=institution, psp_code=code
        )
    registry.adapter.cache_clear()
    yield paystack
    registry.adapter.cache_clear()


def ghs_order(order_id: str = "7d3b1f0e-2c4a-4e8f-9b6a-1c2d3e4f5a6b", amount: str = "250.50") -> Order:
    return accepted_order(
        order_id=order_id,
        amount=amount,
        currency="GHS",
        institution=GCB,
        account_identifier=GCB_ACCOUNT,
        account_name="Kofi Mensah",
    )


def started(order: Order) -> Transfer:
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    return Transfer.objects.get(order=order)


def deliver(client: Client, callback: Callback, capture: Any) -> Any:
    with capture(execute=True):
        headers: dict[str, Any] = dict(callback.headers)
        return client.generic(callback.method, callback.path, data=callback.body, **headers)


def test_a_ghs_bank_order_is_paid_through_paystack_once_the_webhook_is_confirmed_by_a_read(
    fake: PaystackFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = ghs_order()

    transfer = started(order)
    fake.finish(transfer.reference, Status.SUCCEEDED)
    response = deliver(client, fake.callback(transfer.reference), django_capture_on_commit_callbacks)
    run_lane()

    assert response.status_code == 200
    transfer.refresh_from_db()
    order.refresh_from_db()
    assert (transfer.status, transfer.psp_transaction_id) == (TransferStatus.SUCCEEDED, fake.held()[0].psp_id)
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    (payout,) = fake.held()
    assert (payout.reference, payout.amount, payout.currency, payout.account) == (
        transfer.reference,
        Decimal("250.50"),
        "GHS",
        GCB_ACCOUNT,
    )
    assert fake.posts() == 1
    assert fulfil_statuses(order) == ["pending", "success"]
    assert balance_services.balance_verify() == []


def test_the_recipient_is_created_once_and_kept_without_the_account_number(fake: PaystackFake) -> None:
    first = started(ghs_order())
    second = started(ghs_order(order_id="0b7e4c2a-91d3-4f65-8a2e-6c1f0d9b3a57", amount="10"))

    (recipient,) = PspRecipient.objects.all()
    assert fake.recipient_creates == 1
    assert (recipient.psp, recipient.kind, recipient.institution_code, recipient.currency) == (
        "paystack",
        "ghipss",
        "GH040100",
        "GHS",
    )
    assert recipient.account_masked == "*********3456"
    assert GCB_ACCOUNT not in repr(list(PspRecipient.objects.values()))
    assert [first.status, second.status] == [TransferStatus.PENDING, TransferStatus.PENDING]


def test_a_forged_webhook_is_refused_and_moves_nothing(
    fake: PaystackFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = started(ghs_order())
    fake.finish(transfer.reference, Status.SUCCEEDED)

    response = deliver(
        client, fake.callback(transfer.reference, forged=True), django_capture_on_commit_callbacks
    )

    assert response.status_code == 401
    transfer.refresh_from_db()
    assert transfer.status == TransferStatus.PENDING
    assert WebhookEvent.objects.get().signature_valid is False


def test_a_reversal_after_success_is_booked_back_and_never_sent_again(
    fake: PaystackFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = ghs_order()
    transfer = started(order)
    fake.finish(transfer.reference, Status.SUCCEEDED)
    deliver(client, fake.callback(transfer.reference), django_capture_on_commit_callbacks)
    run_lane()
    total_paid = balance_selectors.balance_get(currency="GHS").total

    fake.finish(transfer.reference, Status.REVERSED)
    deliver(client, fake.callback(transfer.reference), django_capture_on_commit_callbacks)
    run_lane()

    transfer.refresh_from_db()
    order.refresh_from_db()
    assert (transfer.status, order.status) == (TransferStatus.REVERSED, OrderStatus.REVERSED)
    assert balance_selectors.balance_get(currency="GHS").total == total_paid + Decimal("250.50")
    assert fake.posts() == 1


def test_a_send_that_timed_out_after_paystack_took_it_is_read_back_not_sent_again(fake: PaystackFake) -> None:
    fake.script_send(Send.TIMEOUT_AFTER_COMMIT)
    order = ghs_order()

    transfer = started(order)
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)
    wait_for(lambda: fake.posts() == 1)  # the fake answers after the client gave up
    Transfer.objects.filter(pk=transfer.pk).update(next_check_at=transfer.created_at)
    run_lane()

    transfer.refresh_from_db()
    assert transfer.status == TransferStatus.PENDING
    assert fake.posts() == 1


def test_a_transfer_waiting_for_an_otp_stays_pending_fails_readiness_and_ends_when_paystack_abandons_it(
    fake: PaystackFake, settings: Any
) -> None:
    fake.otp_required = True
    order = ghs_order()

    transfer = started(order)
    order.refresh_from_db()
    waiting = readiness.check_psp()

    assert (transfer.status, order.status) == (TransferStatus.PENDING, OrderStatus.PAYING)
    assert waiting["ok"] is False
    assert waiting["psps"]["paystack"]["waitingForOtp"] == 1
    assert waiting["psps"]["paystack"]["takesNewPayouts"] is True
    assert balance_selectors.balance_get(currency="GHS").reserved == Decimal("250.50")

    fake.set_wire_status(transfer.reference, "abandoned")
    Transfer.objects.filter(pk=transfer.pk).update(next_check_at=transfer.created_at)
    run_lane()

    transfer.refresh_from_db()
    order.refresh_from_db()
    assert (transfer.status, order.status) == (TransferStatus.FAILED, OrderStatus.CANCELLED)
    assert "OTP" in transfer.failure_message
    assert balance_selectors.balance_get(currency="GHS").reserved == Decimal("0")
    assert readiness.check_psp() == {
        "ok": True,
        "psps": {"paystack": {"circuit": "closed", "takesNewPayouts": True}},
    }
    assert fake.posts() == 1


def test_an_institution_paystack_has_no_code_for_is_not_routed_to_it(fake: PaystackFake) -> None:
    assert psp_services.psp_payable(currency="GHS", institution=GCB) == (True, True)
    assert psp_services.psp_payable(currency="GHS", institution="ECOCGHAC") == (False, False)


def test_sync_banks_maps_aggregator_institutions_to_paystack_codes_with_their_type(
    fake: PaystackFake, capsys: Any
) -> None:
    InstitutionMapping.objects.all().delete()

    call_command("psp", "sync_banks", "--psp", "paystack")

    mapped = dict(InstitutionMapping.objects.filter(psp="paystack").values_list("institution", "psp_code"))
    assert mapped == {
        "ABNGNGLA": "nuban:044",
        "GHCBGHAC": "ghipss:GH040100",
        "ECOCGHAC": "ghipss:GH130100",
        "MOMOGHPC": "mobile_money:MTN",
        "VODAGHPC": "mobile_money:VOD",
        "KCBLKENX": "kepss:01",
    }
    assert "paystack GHS: 4 banks fetched" in capsys.readouterr().out


def test_paystack_balances_are_synced_in_units(fake: PaystackFake) -> None:
    fake.set_balance("GHS", Decimal("1234.56"))

    readings = psp_services.psp_balances_read(psp="paystack")

    assert {r.currency: r.total for r in readings} == {
        "NGN": Decimal("50000000.00"),
        "GHS": Decimal("1234.56"),
        "KES": Decimal("2000000.00"),
    }


def wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)
