"""Lenco answers the node cannot use (missing fields, unknown statuses, HTML error pages, absurd values)
through the transfer_send / transfer_check tasks: the transfer stays pending or goes to review, no crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from balances import selectors as balance_selectors
from orders import services as order_services
from orders import workflow
from orders.models import Order, OrderStatus
from psp.models import Transfer, TransferStatus
from psp.tests.helpers import JSON, LENCO_REF_1, accepted_order, fixture

pytestmark = pytest.mark.django_db
POST_TRANSFER = "/v1/transfer"
GET_BY_REFERENCE = f"/v1/transfer/by-reference/{LENCO_REF_1}"
HTML_502 = ("gateway_502.html", 502, "text/html")


@pytest.fixture
def lenco(settings: Any, lenco_fake: HTTPServer) -> HTTPServer:
    settings.PSP = ["lenco"]
    return lenco_fake


def envelope(data: Any, *, status: bool = True) -> str:
    return json.dumps({"status": status, "message": "", "data": data})


def v1_transaction(**fields: Any) -> dict[str, Any]:
    body = json.loads(fixture("lenco", "v1_transfer_successful.json"))
    body["data"]["transaction"].update(fields)
    return body["data"]


def answer(
    server: HTTPServer, path: str, method: str, body: str | tuple[str, int, str], status: int = 200
) -> None:
    if isinstance(body, tuple):
        name, code, content_type = body
        server.expect_request(path, method=method).respond_with_data(
            fixture("lenco", name), status=code, content_type=content_type
        )
    else:
        server.expect_request(path, method=method).respond_with_data(body, status=status, content_type=JSON)


def send(order: Order) -> tuple[str, Transfer]:
    order_services.order_start_payout(order_pk=order.pk)
    transfer = Transfer.objects.get(order=order)
    workflow.payout_step(transfer_pk=transfer.pk)
    transfer.refresh_from_db()
    order.refresh_from_db()
    return transfer.status, transfer


def pending_at_lenco(server: HTTPServer) -> tuple[Order, Transfer]:
    answer(server, POST_TRANSFER, "POST", fixture("lenco", "v1_transfer_queued.json").decode())
    order = accepted_order()
    status, transfer = send(order)
    assert status == TransferStatus.PENDING
    server.clear()
    return order, transfer


# --- the create call (transfer_send) ----------------------------------------------------------------


def test_create_answer_without_transfer_fields_sends_the_order_to_review(lenco: HTTPServer) -> None:
    answer(lenco, POST_TRANSFER, "POST", envelope({}))
    order = accepted_order()

    status, transfer = send(order)

    assert (status, transfer.sends, transfer.next_check_at) == (TransferStatus.UNKNOWN, 1, None)
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert balance_selectors.balance_get(currency="NGN").reserved == order.amount


def test_create_answer_with_an_unknown_status_sends_the_order_to_review(lenco: HTTPServer) -> None:
    answer(lenco, POST_TRANSFER, "POST", envelope(v1_transaction(status="processing")))
    order = accepted_order()

    status, _ = send(order)

    assert status == TransferStatus.UNKNOWN
    assert order.status == OrderStatus.NEEDS_REVIEW


def test_non_json_502_page_on_the_create_keeps_the_transfer_for_a_look_up(lenco: HTTPServer) -> None:
    answer(lenco, POST_TRANSFER, "POST", HTML_502)
    order = accepted_order()

    status, transfer = send(order)

    assert (status, transfer.sends) == (TransferStatus.CREATED, 1)
    assert transfer.next_check_at is not None
    assert [entry["event"] for entry in transfer.history] == ["send", "unreachable"]
    assert transfer.history[1]["http_status"] == 502
    assert order.status == OrderStatus.PAYING


def test_create_answer_that_is_not_an_envelope_keeps_the_transfer_for_a_look_up(lenco: HTTPServer) -> None:
    answer(lenco, POST_TRANSFER, "POST", json.dumps([1, 2, 3]))
    order = accepted_order()

    status, transfer = send(order)

    assert (status, transfer.sends) == (TransferStatus.CREATED, 1)
    assert order.status == OrderStatus.PAYING


def test_create_answered_200_with_status_false_keeps_the_transfer_for_a_look_up(lenco: HTTPServer) -> None:
    answer(lenco, POST_TRANSFER, "POST", envelope([], status=False))
    order = accepted_order()

    status, _ = send(order)

    assert status == TransferStatus.CREATED
    assert order.status == OrderStatus.PAYING


def test_success_with_an_absurd_fee_and_an_oversized_id_is_applied_without_them(lenco: HTTPServer) -> None:
    answer(lenco, POST_TRANSFER, "POST", envelope(v1_transaction(fee="1e30", nipSessionId="9" * 300)))
    order = accepted_order()

    status, transfer = send(order)

    assert status == TransferStatus.SUCCEEDED
    assert (transfer.fee, transfer.psp_transaction_id) == (None, "9" * 128)
    assert (order.status, order.psp_tx_id) == (OrderStatus.PAID, "9" * 128)


# --- the look-up (transfer_check) ----------------------------------------------------------------------


def test_look_up_answer_without_fields_sends_the_order_to_review(lenco: HTTPServer) -> None:
    order, transfer = pending_at_lenco(lenco)
    answer(lenco, GET_BY_REFERENCE, "GET", envelope({"request": None, "transaction": None}))

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    order.refresh_from_db()
    assert status == TransferStatus.UNKNOWN
    assert order.status == OrderStatus.NEEDS_REVIEW


def test_look_up_with_an_unknown_status_sends_the_order_to_review(lenco: HTTPServer) -> None:
    order, transfer = pending_at_lenco(lenco)
    answer(lenco, GET_BY_REFERENCE, "GET", envelope(v1_transaction(status="reversed")))

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    order.refresh_from_db()
    assert status == TransferStatus.UNKNOWN
    assert order.status == OrderStatus.NEEDS_REVIEW


def test_look_up_of_another_reference_sends_the_order_to_review(lenco: HTTPServer) -> None:
    order, transfer = pending_at_lenco(lenco)
    answer(lenco, GET_BY_REFERENCE, "GET", envelope(v1_transaction(clientReference="pn-someone-else-1")))

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    order.refresh_from_db()
    assert status == TransferStatus.UNKNOWN
    assert order.status == OrderStatus.NEEDS_REVIEW


def test_non_json_502_page_on_the_look_up_keeps_the_transfer_pending(lenco: HTTPServer) -> None:
    order, transfer = pending_at_lenco(lenco)
    answer(lenco, GET_BY_REFERENCE, "GET", HTML_502)
    checked_before = transfer.next_check_at

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    transfer.refresh_from_db()
    order.refresh_from_db()
    assert status == TransferStatus.PENDING
    assert transfer.next_check_at is not None
    assert transfer.next_check_at != checked_before
    assert transfer.history[-1]["event"] == "unreachable"
    assert order.status == OrderStatus.PAYING


def test_look_up_refused_by_lenco_keeps_the_transfer_pending(lenco: HTTPServer) -> None:
    order, transfer = pending_at_lenco(lenco)
    answer(
        lenco, GET_BY_REFERENCE, "GET", json.dumps({"status": False, "message": "Unauthorized"}), status=401
    )

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    order.refresh_from_db()
    assert status == TransferStatus.PENDING
    assert order.status == OrderStatus.PAYING


def test_look_up_answered_200_with_a_non_json_body_keeps_the_transfer_pending(lenco: HTTPServer) -> None:
    order, transfer = pending_at_lenco(lenco)
    lenco.expect_request(GET_BY_REFERENCE).respond_with_data("<html>ok</html>", content_type="text/html")

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    order.refresh_from_db()
    assert status == TransferStatus.PENDING
    assert order.status == OrderStatus.PAYING


def test_resend_after_a_lost_answer_survives_a_garbled_look_up(lenco: HTTPServer) -> None:
    answer(lenco, POST_TRANSFER, "POST", HTML_502)
    order = accepted_order()
    _, transfer = send(order)
    lenco.clear()
    answer(lenco, GET_BY_REFERENCE, "GET", envelope("not an object"))

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    order.refresh_from_db()
    assert status == TransferStatus.UNKNOWN
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert [request.method for request, _ in lenco.log] == ["GET"]
