"""Failover between PSPs: a refusal before money moved tries the next PSP; an unknown outcome never does."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from balances import selectors as balance_selectors
from balances.models import EntryKind, LedgerEntry
from orders import services as order_services
from orders import workflow
from orders.models import OrderStatus, OutboxMessage
from psp import services
from psp.models import SandboxPayout, Transfer, TransferStatus
from psp.tests.helpers import (
    JSON,
    LENCO_REF_1,
    SANDBOX_REF_2,
    accepted_order,
    fixture,
    fulfil_statuses,
    lenco_error,
    run_lane,
    transfers_of,
)

pytestmark = pytest.mark.django_db
POST_TRANSFER = "/v1/transfer"
GET_BY_REFERENCE = f"/v1/transfer/by-reference/{LENCO_REF_1}"


def requests_seen(server: HTTPServer) -> list[str]:
    return [f"{request.method} {request.path}" for request, _ in server.log]


def test_lenco_refusal_before_money_moved_fails_over_to_the_sandbox_and_pays_once(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    lenco_then_sandbox.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        lenco_error(message="Insufficient funds in your account", code="02"), status=400, content_type=JSON
    )
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert transfers_of(order) == [
        ("lenco", 1, LENCO_REF_1, TransferStatus.REJECTED),
        ("sandbox", 2, SANDBOX_REF_2, TransferStatus.SUCCEEDED),
    ]
    assert (order.status, order.psp) == (OrderStatus.PAID, "sandbox")
    assert list(SandboxPayout.objects.values_list("reference", flat=True)) == [SANDBOX_REF_2]
    assert requests_seen(lenco_then_sandbox) == [f"POST {POST_TRANSFER}"]
    assert list(LedgerEntry.objects.filter(order=order).values_list("kind", flat=True)) == [
        EntryKind.RESERVE,
        EntryKind.DEBIT,
    ]
    assert fulfil_statuses(order) == ["pending", "success"]
    rejected = Transfer.objects.get(psp="lenco")
    assert (rejected.failure_reason, rejected.failure_message) == (
        "insufficient_funds",
        "lenco transfer_create: Insufficient funds in your account",
    )


def test_lenco_5xx_on_the_post_never_fails_over_and_is_settled_by_reference(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    lenco_then_sandbox.expect_ordered_request(POST_TRANSFER, method="POST").respond_with_data(
        json.dumps({"status": False, "message": "Service unavailable"}), status=503, content_type=JSON
    )
    lenco_then_sandbox.expect_ordered_request(GET_BY_REFERENCE, method="GET").respond_with_data(
        fixture("lenco", "v1_transfer_successful.json"), content_type=JSON
    )
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    transfer = Transfer.objects.get(order=order)
    assert (transfer.psp, transfer.status, transfer.sends) == ("lenco", TransferStatus.CREATED, 1)

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    order.refresh_from_db()
    assert status == TransferStatus.SUCCEEDED
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.SUCCEEDED)]
    assert (order.status, order.psp, order.psp_tx_id) == (
        OrderStatus.PAID,
        "lenco",
        "000014240502101500123456789012",
    )
    assert SandboxPayout.objects.count() == 0
    assert requests_seen(lenco_then_sandbox) == [f"POST {POST_TRANSFER}", f"GET {GET_BY_REFERENCE}"]


def test_lenco_timeout_on_the_post_never_fails_over_and_resends_the_same_reference(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    posted: list[str] = []

    def slow_then_queued(request: Request) -> Response:
        posted.append(json.loads(request.get_data())["reference"])
        if len(posted) == 1:
            time.sleep(0.6)  # longer than LENCO_TIMEOUT_SECONDS: the client gives up, the outcome is unknown
        return Response(fixture("lenco", "v1_transfer_queued.json"), content_type=JSON)

    lenco_then_sandbox.expect_request(POST_TRANSFER, method="POST").respond_with_handler(slow_then_queued)
    lenco_then_sandbox.expect_request(GET_BY_REFERENCE, method="GET").respond_with_data(
        fixture("lenco", "v1_not_found.json"), status=400, content_type=JSON
    )
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    first = Transfer.objects.get(order=order)
    assert (first.status, first.sends) == (TransferStatus.CREATED, 1)
    # The worker comes back once the first send's lease has run out (no second send while it may be live).
    Transfer.objects.filter(pk=first.pk).update(last_sent_at=timezone.now() - services.SEND_LEASE)

    workflow.payout_step(transfer_pk=first.pk)

    order.refresh_from_db()
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.PENDING)]
    assert posted == [LENCO_REF_1, LENCO_REF_1]
    assert Transfer.objects.get(order=order).sends == 2
    assert (order.status, order.psp) == (OrderStatus.PAYING, "lenco")
    assert SandboxPayout.objects.count() == 0


def test_lenco_unreachable_past_the_review_window_goes_to_review_not_to_another_psp(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    lenco_then_sandbox.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        fixture("lenco", "gateway_502.html"), status=502, content_type="text/html"
    )
    lenco_then_sandbox.expect_request(GET_BY_REFERENCE, method="GET").respond_with_data(
        fixture("lenco", "gateway_502.html"), status=502, content_type="text/html"
    )
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    Transfer.objects.filter(order=order).update(created_at=timezone.now() - timedelta(minutes=16))

    workflow.payout_step(transfer_pk=Transfer.objects.get(order=order).pk)

    order.refresh_from_db()
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.UNKNOWN)]
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert SandboxPayout.objects.count() == 0
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("15000")


def test_lenco_recipient_invalid_refusal_cancels_without_trying_another_psp(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    lenco_then_sandbox.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        fixture("lenco", "v1_invalid_account.json"), status=400, content_type=JSON
    )
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.REJECTED)]
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "Invalid recipient bank details")
    assert OutboxMessage.objects.get(order=order, kind="cancel").payload == {
        "reason": "Invalid recipient bank details"
    }
    assert SandboxPayout.objects.count() == 0
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")


def test_order_exclude_psps_keeps_the_payout_away_from_an_excluded_psp(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    order = accepted_order(exclude_psps=["lenco"])

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert transfers_of(order) == [("sandbox", 1, "pn-559028af6e154b21bab5052a248db249-1", "succeeded")]
    assert (order.status, order.psp) == (OrderStatus.PAID, "sandbox")
    assert requests_seen(lenco_then_sandbox) == []


def test_refusal_does_not_fail_over_to_a_psp_the_order_excludes(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    lenco_then_sandbox.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        lenco_error(message="Insufficient funds in your account", code="02"), status=400, content_type=JSON
    )
    order = accepted_order(exclude_psps=["sandbox"])

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.REJECTED)]
    assert (order.status, order.cancel_reason) == (
        OrderStatus.CANCELLED,
        "Payout refused: lenco transfer_create: Insufficient funds in your account",
    )
    assert SandboxPayout.objects.count() == 0
