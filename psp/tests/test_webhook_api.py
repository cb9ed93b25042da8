"""Lenco webhooks through the view: verified, stored raw, deduplicated, then the transfer is re-read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from psp import registry
from psp.clients.lenco import webhook_signature
from psp.models import Transfer, TransferStatus, WebhookEvent
from psp.tests.helpers import run_lane

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "lenco"
REFERENCE = "pn-559028af6e154b21bab5052a248db249-1"
API_KEY = "lenco-test-token"


@pytest.fixture
def lenco(settings: Any, httpserver: Any) -> Iterator[Any]:
    settings.PSP = ["lenco"]
    settings.LENCO_API_KEY = API_KEY
    settings.LENCO_ACCOUNT_ID = "6f2c3a9e-1b7d-4c55-9e0a-3d8b2f41c7aa"
    settings.LENCO_BASE_URL = httpserver.url_for("/v1").rstrip("/")
    settings.LENCO_V2_BASE_URL = httpserver.url_for("/v2").rstrip("/")
    registry.adapter.cache_clear()
    yield httpserver
    registry.adapter.cache_clear()


def paying_order() -> Transfer:
    order = OrderFactory.create(order_id="559028af-6e15-4b21-bab5-052a248db249", amount=Decimal("15000"))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAYING, psp="lenco")
    from balances.models import Balance

    Balance.objects.create(currency="NGN", total=Decimal("100000"), reserved=Decimal("15000"))
    from balances.models import EntryKind, LedgerEntry

    LedgerEntry.objects.create(
        balance=Balance.objects.get(),
        kind=EntryKind.CREDIT,
        amount=Decimal("100000"),
        total_delta=Decimal("100000"),
        reserved_delta=Decimal("0"),
    )
    LedgerEntry.objects.create(
        balance=Balance.objects.get(),
        kind=EntryKind.RESERVE,
        amount=Decimal("15000"),
        order=order,
        total_delta=Decimal("0"),
        reserved_delta=Decimal("15000"),
    )
    return Transfer.objects.create(
        order=order,
        psp="lenco",
        reference=REFERENCE,
        amount=Decimal("15000"),
        currency="NGN",
        status=TransferStatus.PENDING,
        sends=1,
    )


def post_webhook(client: Client, body: bytes, signature: str | None) -> Any:
    headers: dict[str, Any] = {"HTTP_X_LENCO_SIGNATURE": signature} if signature else {}
    return client.generic("POST", "/webhooks/lenco", data=body, content_type="application/json", **headers)


def test_signed_webhook_is_stored_and_the_transfer_re_read_from_lenco(
    lenco: Any, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = paying_order()
    body = (FIXTURES / "webhook_v1_transaction_failed.json").read_bytes()
    lenco.expect_request(f"/v1/transfer/by-reference/{REFERENCE}").respond_with_data(
        (FIXTURES / "v1_transfer_successful.json").read_bytes(), content_type="application/json"
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(client, body, webhook_signature(body=body, api_key=API_KEY))
    run_lane()  # the payout lane reads the transfer the webhook made due

    assert response.status_code == 200
    transfer.refresh_from_db()
    # The webhook said "failed" but Lenco, asked by reference, says successful: the PSP's answer wins.
    assert transfer.status == TransferStatus.SUCCEEDED
    assert transfer.order.status == OrderStatus.PAID
    event = WebhookEvent.objects.get()
    assert (event.signature_valid, event.reference, event.outcome) == (True, REFERENCE, "read_due")


def test_same_webhook_three_times_is_processed_once(
    lenco: Any, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    paying_order()
    body = (FIXTURES / "webhook_v1_transaction_failed.json").read_bytes()
    signature = webhook_signature(body=body, api_key=API_KEY)
    lenco.expect_request(f"/v1/transfer/by-reference/{REFERENCE}").respond_with_data(
        (FIXTURES / "v1_transfer_failed.json").read_bytes(), content_type="application/json"
    )

    with django_capture_on_commit_callbacks(execute=True):
        answers = [post_webhook(client, body, signature).json()["message"] for _ in range(3)]
    run_lane()  # the payout lane reads the transfer the webhook made due

    assert answers == ["Received", "Duplicate event", "Duplicate event"]
    assert WebhookEvent.objects.count() == 1
    assert len(lenco.log) == 1
    assert Order.objects.get().status == OrderStatus.CANCELLED


def test_badly_signed_webhook_is_401_stored_and_not_acted_on(lenco: Any, client: Client) -> None:
    transfer = paying_order()
    body = (FIXTURES / "webhook_v1_transaction_failed.json").read_bytes()

    response = post_webhook(client, body, "0" * 128)

    assert response.status_code == 401
    assert WebhookEvent.objects.get().signature_valid is False
    transfer.refresh_from_db()
    assert transfer.status == TransferStatus.PENDING
    assert len(lenco.log) == 0


def test_webhook_for_a_psp_not_enabled_is_404(client: Client) -> None:
    response = client.generic(
        "POST", "/webhooks/lenco", data=json.dumps({}).encode(), content_type="application/json"
    )

    assert response.status_code == 404


def test_the_psp_answer_is_kept_on_the_transfer_with_the_account_masked(
    lenco: Any, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = paying_order()
    body = (FIXTURES / "webhook_v1_transaction_failed.json").read_bytes()
    lenco.expect_request(f"/v1/transfer/by-reference/{REFERENCE}").respond_with_data(
        (FIXTURES / "v1_transfer_successful.json").read_bytes(), content_type="application/json"
    )

    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(client, body, webhook_signature(body=body, api_key=API_KEY))
    run_lane()  # the payout lane reads the transfer the webhook made due

    transfer.refresh_from_db()
    stored: Any = transfer.last_response
    assert stored["request"]["accountNumber"] == "******6789"
    assert stored["transaction"]["details"]["accountNumber"] == "******6789"
    assert stored["transaction"]["status"] == "successful"
