"""MTN MoMo callbacks through the view: stored, never trusted, the transfer re-read from MTN by reference."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from pytest_httpserver import HTTPServer

from orders import workflow
from orders.models import OrderStatus
from psp import registry
from psp.models import Transfer, TransferStatus, WebhookEvent
from psp.tests.helpers import JSON, fixture, paying_transfer, run_lane

pytestmark = pytest.mark.django_db
REF = "c29dd208-1b11-40ce-abd0-12c5470becab"  # the MTN fixtures' externalId
API_USER = "3f8b2c1a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
API_KEY = "b1c2d3e4f5a67890b1c2d3e4f5a67890"
SUBSCRIPTION_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
STATUS_PATH = f"/disbursement/v1_0/transfer/{REF}"


@pytest.fixture
def momo(settings: Any, httpserver: HTTPServer) -> Iterator[HTTPServer]:
    settings.PSP = ["mtn_momo"]
    settings.MTN_MOMO_BASE_URL = httpserver.url_for("/")
    settings.MTN_MOMO_SUBSCRIPTION_KEY = SUBSCRIPTION_KEY
    settings.MTN_MOMO_API_USER = API_USER
    settings.MTN_MOMO_API_KEY = API_KEY
    settings.MTN_MOMO_TARGET_ENVIRONMENT = "sandbox"
    settings.MTN_MOMO_CURRENCY = "EUR"
    settings.MTN_MOMO_CALLBACK_HOST = "https://node.example.com"
    settings.MTN_MOMO_TIMEOUT_SECONDS = Decimal("2")
    registry.adapter.cache_clear()
    httpserver.expect_request("/disbursement/token/", method="POST").respond_with_data(
        fixture("mtn_momo", "token.json"), content_type=JSON
    )
    yield httpserver
    registry.adapter.cache_clear()


def callback(client: Client, body: bytes, *, method: str = "POST", reference: str = REF) -> Any:
    return client.generic(method, f"/webhooks/mtn_momo/{reference}", data=body, content_type=JSON)


def test_callback_is_stored_and_the_transfer_re_read_from_mtn(
    momo: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = paying_transfer(psp="mtn_momo", reference=REF)
    momo.expect_request(STATUS_PATH, method="GET").respond_with_data(
        fixture("mtn_momo", "transfer_successful.json"), content_type=JSON
    )
    body = fixture("mtn_momo", "callback_successful.json")

    with django_capture_on_commit_callbacks(execute=True):
        response = callback(client, body)
    run_lane()  # the payout lane reads the transfer the webhook made due

    assert (response.status_code, response.json()["message"]) == (200, "Received")
    event = WebhookEvent.objects.get()
    assert (event.psp, event.reference, event.event_type, event.signature_valid, event.outcome) == (
        "mtn_momo",
        REF,
        "transfer.successful",
        True,
        "read_due",
    )
    assert event.body == body.decode()
    transfer.refresh_from_db()
    assert (transfer.status, transfer.psp_transaction_id) == (TransferStatus.SUCCEEDED, "981569077")
    assert (transfer.order.status, transfer.order.psp_tx_id) == (OrderStatus.PAID, "981569077")
    status_read = [request for request, _ in momo.log if request.path == STATUS_PATH]
    assert len(status_read) == 1
    assert status_read[0].headers["X-Target-Environment"] == "sandbox"
    assert status_read[0].headers["Ocp-Apim-Subscription-Key"] == SUBSCRIPTION_KEY
    token_call = next(request for request, _ in momo.log if request.path == "/disbursement/token/")
    assert token_call.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{API_USER}:{API_KEY}".encode()
    ).decode("ascii")


def test_callback_saying_successful_does_not_win_over_mtns_failed_status(
    momo: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = paying_transfer(psp="mtn_momo", reference=REF)
    momo.expect_request(STATUS_PATH, method="GET").respond_with_data(
        fixture("mtn_momo", "transfer_failed_string_reason.json"), content_type=JSON
    )

    with django_capture_on_commit_callbacks(execute=True):
        callback(client, fixture("mtn_momo", "callback_successful.json"))
    run_lane()  # the payout lane reads the transfer the webhook made due

    transfer.refresh_from_db()
    assert (transfer.status, transfer.failure_reason) == (TransferStatus.FAILED, "recipient_invalid")
    assert (transfer.order.status, transfer.order.cancel_reason) == (OrderStatus.CANCELLED, "PAYEE_NOT_FOUND")
    assert WebhookEvent.objects.get().outcome == "read_due"


def test_callback_delivered_as_put_is_accepted_like_a_post(
    momo: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = paying_transfer(psp="mtn_momo", reference=REF)
    momo.expect_request(STATUS_PATH, method="GET").respond_with_data(
        fixture("mtn_momo", "transfer_successful.json"), content_type=JSON
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = callback(client, fixture("mtn_momo", "callback_successful.json"), method="PUT")
    run_lane()  # the payout lane reads the transfer the webhook made due

    assert response.status_code == 200
    transfer.refresh_from_db()
    assert transfer.status == TransferStatus.SUCCEEDED


def test_repeated_callback_is_stored_once_and_mtn_asked_once(
    momo: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    paying_transfer(psp="mtn_momo", reference=REF)
    momo.expect_request(STATUS_PATH, method="GET").respond_with_data(
        fixture("mtn_momo", "transfer_successful.json"), content_type=JSON
    )
    body = fixture("mtn_momo", "callback_successful.json")

    with django_capture_on_commit_callbacks(execute=True):
        messages = [callback(client, body).json()["message"] for _ in range(2)]
    run_lane()  # the payout lane reads the transfer the webhook made due

    assert messages == ["Received", "Duplicate event"]
    assert [request.path for request, _ in momo.log].count(STATUS_PATH) == 1


def test_callback_for_a_reference_the_node_never_sent_changes_nothing(
    momo: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = paying_transfer(psp="mtn_momo", reference=REF)
    other = "0b9d8c7e-6f5a-4b3c-9d1e-0f9a8b7c6d5e"

    with django_capture_on_commit_callbacks(execute=True):
        response = callback(client, b'{"status": "SUCCESSFUL"}', reference=other)
    run_lane()  # the payout lane reads the transfer the webhook made due

    assert (response.status_code, response.json()["message"]) == (200, "Received")
    assert not WebhookEvent.objects.exists()  # unsigned and about no transfer of ours: counted, not stored
    assert Transfer.objects.get(pk=transfer.pk).status == TransferStatus.PENDING
    assert momo.log == []


def test_callback_without_a_valid_reference_is_401(momo: HTTPServer, client: Client) -> None:
    response = callback(client, b'{"status": "SUCCESSFUL"}', reference="not-a-uuid")

    assert response.status_code == 401
    assert WebhookEvent.objects.get().signature_valid is False


def test_transfer_mtn_took_but_does_not_show_yet_keeps_polling_until_mtn_answers(momo: HTTPServer) -> None:
    """MTN answered 202 to the transfer; a read two seconds later says 404 (its propagation lag)."""

    transfer = paying_transfer(psp="mtn_momo", reference=REF, amount="15")
    reads = iter([("not_found.json", 404), ("transfer_successful.json", 200)])

    def lagging(request: Any) -> Any:
        from werkzeug import Response

        name, status = next(reads)
        return Response(fixture("mtn_momo", name), status=status, content_type=JSON)

    momo.expect_request(STATUS_PATH, method="GET").respond_with_handler(lagging)

    workflow.payout_step(transfer_pk=transfer.pk)

    transfer.refresh_from_db()
    assert (transfer.status, transfer.order.status) == (TransferStatus.PENDING, OrderStatus.PAYING)

    workflow.payout_step(transfer_pk=transfer.pk)

    transfer.refresh_from_db()
    assert (transfer.status, transfer.order.status) == (TransferStatus.SUCCEEDED, OrderStatus.PAID)
