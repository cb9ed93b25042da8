"""A UGX order to an Airtel wallet through the node's own services and payout lane, against the Airtel
fake: paid synchronously, paid after a callback (a hint, confirmed by an enquiry), never on a forged
callback, refused for good when Airtel says the number is wrong, held when the KYC name disagrees."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from pytest_httpserver import HTTPServer

from orders import services as order_services
from orders.models import Order, OrderStatus
from psp import registry
from psp import services as psp_services
from psp.models import Transfer, TransferStatus, WebhookEvent
from psp.tests.conformance.fakes.airtel import AirtelFake
from psp.tests.conformance.kit import Refusal, Send, Status
from psp.tests.helpers import ORDER_KEY, accepted_order, fulfil_statuses, run_lane

pytestmark = pytest.mark.django_db
REF = "pn559028af6e154b21bab5052a248db2491"


@pytest.fixture
def airtel(settings: Any, httpserver: HTTPServer) -> Iterator[AirtelFake]:
    fake = AirtelFake(httpserver)
    fake.install()
    for name, value in fake.node_settings().items():
        setattr(settings, name, value)
    settings.PSP = ["airtel"]
    settings.CURRENCIES = [*settings.CURRENCIES, "UGX"]
    registry.adapter.cache_clear()
    yield fake
    registry.adapter.cache_clear()


def ugx_order() -> Order:
    """An accepted UGX order to an Airtel Uganda wallet, its payout due."""
    order = accepted_order(
        amount="15000",
        funds="100000",
        currency="UGX",
        institution="AIRTUGPC",
        account_identifier="+256752604392",
        account_name="Bob Mukasa",
    )
    order_services.order_start_payout(order_pk=order.pk)
    return order


def test_ugx_order_is_paid_through_airtel_with_a_synchronous_success(airtel: AirtelFake) -> None:
    order = ugx_order()
    airtel.script_send(Send.SUCCEEDED)

    run_lane()

    order.refresh_from_db()
    transfer = Transfer.objects.get(order=order)
    assert (transfer.psp, transfer.reference, transfer.status) == ("airtel", REF, TransferStatus.SUCCEEDED)
    assert (order.status, order.psp_tx_id) == (OrderStatus.PAID, airtel.payouts[REF].psp_id)
    assert fulfil_statuses(order) == ["pending", "success"]  # the node always reports pending first
    assert [(p.reference, p.amount, p.account) for p in airtel.held()] == [
        (REF, Decimal("15000"), "752604392")
    ]
    assert airtel.posts() == 1
    assert airtel.problems == []


def test_callback_makes_the_pending_payout_due_and_the_enquiry_settles_it(
    airtel: AirtelFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = ugx_order()
    airtel.script_send(Send.PENDING)
    run_lane()
    assert Transfer.objects.get(order=order).status == TransferStatus.PENDING
    airtel.finish(REF, Status.SUCCEEDED)
    callback = airtel.callback(REF)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(callback.path, data=callback.body, content_type="application/json")
    run_lane()

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.psp, event.reference, event.signature_valid, event.outcome) == (
        "airtel",
        REF,
        True,
        "read_due",
    )
    order.refresh_from_db()
    assert (order.status, order.psp_tx_id) == (OrderStatus.PAID, airtel.payouts[REF].psp_id)
    assert fulfil_statuses(order) == ["pending", "success"]
    assert airtel.posts() == 1


def test_forged_callback_is_stored_refused_and_changes_nothing(
    airtel: AirtelFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = ugx_order()
    run_lane()
    callback = airtel.callback(REF, forged=True)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(callback.path, data=callback.body, content_type="application/json")

    assert response.status_code == 401
    assert WebhookEvent.objects.get().signature_valid is False
    assert Transfer.objects.get(order=order).status == TransferStatus.PENDING


def test_wrong_number_refusal_is_final_and_nothing_is_held_at_airtel(airtel: AirtelFake) -> None:
    order = ugx_order()
    airtel.script_send(Refusal.RECIPIENT_INVALID)

    run_lane()

    order.refresh_from_db()
    transfer = Transfer.objects.get(order=order)
    assert (transfer.status, transfer.failure_reason) == (TransferStatus.REJECTED, "recipient_invalid")
    assert order.status == OrderStatus.CANCELLED
    assert airtel.held() == []
    assert airtel.posts() == 1


def test_kyc_name_that_disagrees_holds_the_payout_for_staff(airtel: AirtelFake, settings: Any) -> None:
    settings.PAYOUT_NAME_CHECK = "hold"
    airtel.names["752604392"] = "Alice Namubiru"
    order = ugx_order()

    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert airtel.posts() == 0


def test_balances_come_from_the_disbursement_wallet(airtel: AirtelFake) -> None:
    airtel.set_balance("UGX", Decimal("230486"))

    readings = psp_services.psp_balances_read(psp="airtel")

    assert [(r.currency, r.total, r.available) for r in readings] == [
        ("UGX", Decimal("230486"), Decimal("230486"))
    ]


def test_order_key_of_the_helpers_is_the_reference_source(airtel: AirtelFake) -> None:
    assert registry.adapter("airtel").make_reference(order_key=ORDER_KEY, attempt=1) == REF
