"""POST /tx_status answers from the node's own records, in the shape the Go aggregator's task needs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from orders.models import Flavour, OrderStatus
from orders.tests.factories import OrderFactory
from provision.testing import post_signed_raw

pytestmark = pytest.mark.django_db


def _force(status: str, **fields: object) -> Any:
    order = OrderFactory.create(**fields)
    type(order).objects.filter(pk=order.pk).update(status=status)  # test set-up only: jump to a state
    order.refresh_from_db()
    return order


@pytest.mark.parametrize(
    "status",
    [
        OrderStatus.ACCEPTING,
        OrderStatus.ACCEPTED,
        OrderStatus.HELD,
        OrderStatus.PAYING,
        OrderStatus.NEEDS_REVIEW,
    ],
)
def test_accepted_unfinished_order_is_pending_with_string_psp_and_txid(client: Client, status: str) -> None:
    order = _force(status)

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "orderId": order.order_id})

    assert response.status_code == 200
    assert response.json()["data"] == {"status": "pending", "psp": "", "txId": ""}


@pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.FULFILLED])
def test_paid_order_is_success_with_psp_and_txid(client: Client, status: str) -> None:
    order = _force(status, psp="sandbox", psp_tx_id="SBX123")

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "orderId": order.order_id})

    assert response.json()["data"] == {"status": "success", "psp": "sandbox", "txId": "SBX123"}


def test_cancelled_order_is_failed_with_the_reason(client: Client) -> None:
    order = _force(
        OrderStatus.CANCELLED, psp="sandbox", psp_tx_id="SBX9", cancel_reason="Beneficiary Bank not Available"
    )

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "orderId": order.order_id})

    assert response.json()["data"] == {
        "status": "failed",
        "psp": "sandbox",
        "txId": "SBX9",
        "error": "Beneficiary Bank not Available",
    }


def test_upstream_reference_key_is_understood(client: Client) -> None:
    order = _force(OrderStatus.PAID, psp="sandbox", psp_tx_id="SBX1")

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "reference": order.order_id})

    assert response.json()["data"]["status"] == "success"


def test_order_asked_by_its_id_answers_for_itself_not_for_a_paid_seed_order_referencing_that_id(
    client: Client,
) -> None:
    asked_id = str(uuid.uuid4())
    _force(OrderStatus.PAID, flavour=Flavour.SEED, psp="sandbox", psp_tx_id="SBX-OTHER", reference=asked_id)
    unpaid = _force(OrderStatus.ACCEPTED, order_id=asked_id)  # a higher primary key than the paid order

    by_order_id = post_signed_raw(client, "/tx_status", {"currency": "NGN", "orderId": unpaid.order_id})
    by_reference = post_signed_raw(client, "/tx_status", {"currency": "NGN", "reference": unpaid.order_id})

    assert by_order_id.json()["data"] == {"status": "pending", "psp": "", "txId": ""}
    assert by_reference.json()["data"] == {"status": "pending", "psp": "", "txId": ""}


def test_order_id_key_answers_only_for_that_exact_order_id(client: Client) -> None:
    _force(
        OrderStatus.PAID, flavour=Flavour.SEED, psp="sandbox", psp_tx_id="SBX3", reference="ORDER-2025-001"
    )

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "orderId": "ORDER-2025-001"})

    assert response.status_code == 404


def test_seed_order_is_found_by_its_unique_reference(client: Client) -> None:
    _force(
        OrderStatus.PAID, flavour=Flavour.SEED, psp="sandbox", psp_tx_id="SBX4", reference="ORDER-2025-001"
    )

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "reference": "ORDER-2025-001"})

    assert response.json()["data"] == {"status": "success", "psp": "sandbox", "txId": "SBX4"}


def test_reference_shared_by_two_seed_orders_answers_for_neither(client: Client) -> None:
    _force(
        OrderStatus.PAID, flavour=Flavour.SEED, psp="sandbox", psp_tx_id="SBX5", reference="ORDER-2025-001"
    )
    _force(OrderStatus.ACCEPTED, flavour=Flavour.SEED, reference="ORDER-2025-001")

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "reference": "ORDER-2025-001"})

    assert response.status_code == 409
    assert response.json()["status"] == "error"
    assert response.json()["data"]["code"] == "ambiguous_reference"
    assert "SBX5" not in response.content.decode()


def test_new_order_flavour_order_is_not_found_by_its_reference(client: Client) -> None:
    _force(
        OrderStatus.PAID,
        flavour=Flavour.NEW_ORDER,
        psp="sandbox",
        psp_tx_id="SBX6",
        reference="ORDER-2025-001",
    )

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "reference": "ORDER-2025-001"})

    assert response.status_code == 404


def test_pending_fulfilment_question_with_psp_and_txid_is_answered(client: Client) -> None:
    order = _force(OrderStatus.PAYING, psp="sandbox", psp_tx_id="SBX2")

    response = post_signed_raw(
        client,
        "/tx_status",
        {"currency": "NGN", "orderId": order.order_id, "psp": "sandbox", "txId": "SBX2"},
    )

    assert response.json()["data"] == {"status": "pending", "psp": "sandbox", "txId": "SBX2"}


@pytest.mark.parametrize("status", [OrderStatus.RECEIVED, OrderStatus.DECLINED, OrderStatus.EXPIRED])
def test_order_never_accepted_is_404(client: Client, status: str) -> None:
    order = _force(status)

    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "orderId": order.order_id})

    assert response.status_code == 404


def test_unknown_order_is_404(client: Client) -> None:
    response = post_signed_raw(client, "/tx_status", {"currency": "NGN", "orderId": "no-such-order"})

    assert response.status_code == 404
    assert response.json()["status"] == "error"


def test_missing_order_key_is_400(client: Client) -> None:
    response = post_signed_raw(client, "/tx_status", {"currency": "NGN"})

    assert response.status_code == 400
    assert "orderId" in response.json()["data"]["errors"]


def test_unsigned_question_is_401(client: Client) -> None:
    response = client.generic("POST", "/tx_status", data=b'{"orderId":"x"}', content_type="")

    assert response.status_code == 401
