"""Once a send may have reached the PSP, only the PSP's own answer about that reference ends the transfer.

Lenco runs as a real local HTTP server that can take a payout and lose the answer (a read timeout), show
nothing for it on a read for a while (read-after-write lag), and refuse a re-send of the same reference
with a 4xx that does not say "duplicate" (the first transfer used up the funds or the limit). None of
these may fail the order over to another PSP, cancel it, or report it failed to the aggregator.
"""

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
from orders import services as order_services
from orders import workflow
from orders.models import Order, OrderStatus
from psp import services
from psp.base import FailureReason, PspRejected
from psp.models import SandboxPayout, Transfer, TransferStatus
from psp.tests.helpers import (
    JSON,
    LENCO_REF_1,
    accepted_order,
    fixture,
    fulfil_statuses,
    lenco_error,
    transfers_of,
)

pytestmark = pytest.mark.django_db
POST_TRANSFER = "/v1/transfer"
GET_BY_REFERENCE = f"/v1/transfer/by-reference/{LENCO_REF_1}"
INSUFFICIENT = lenco_error(message="Insufficient funds in your account", code="02")


class LaggingLenco:
    """Lenco that takes the first POST but answers it too late, refuses later POSTs of the same reference
    with ``refusal`` (never the word "duplicate"), and shows the transfer on a read only once ``visible``."""

    def __init__(self, server: HTTPServer, *, refusal: str = INSUFFICIENT) -> None:
        self.posts: list[str] = []
        self.visible = False
        self.final = "v1_transfer_successful.json"
        server.expect_request(POST_TRANSFER, method="POST").respond_with_handler(self.post)
        server.expect_request(GET_BY_REFERENCE, method="GET").respond_with_handler(self.read)
        self.refusal = refusal

    def post(self, request: Request) -> Response:
        self.posts.append(json.loads(request.get_data())["reference"])
        if len(self.posts) == 1:
            time.sleep(0.6)  # longer than LENCO_TIMEOUT_SECONDS: the transfer is taken, the answer is lost
            return Response(fixture("lenco", "v1_transfer_queued.json"), content_type=JSON)
        return Response(self.refusal, status=400, content_type=JSON)

    def read(self, request: Request) -> Response:
        if not self.visible:
            return Response(fixture("lenco", "v1_not_found.json"), status=400, content_type=JSON)
        return Response(fixture("lenco", self.final), content_type=JSON)


@pytest.fixture
def lagging_lenco(lenco_then_sandbox: HTTPServer) -> LaggingLenco:
    return LaggingLenco(lenco_then_sandbox)


def started(order: Order) -> Transfer:
    order_services.order_start_payout(order_pk=order.pk)
    transfer = Transfer.objects.get(order=order)
    workflow.payout_step(transfer_pk=transfer.pk)
    transfer.refresh_from_db()
    return transfer


def past_the_send_lease(transfer: Transfer) -> None:
    """As if the worker came back to the transfer after its send lease ran out."""
    Transfer.objects.filter(pk=transfer.pk).update(
        last_sent_at=timezone.now() - services.SEND_LEASE - timedelta(seconds=1)
    )


def test_refused_resend_after_a_lost_answer_never_fails_over_and_the_psps_answer_settles_it(
    lagging_lenco: LaggingLenco,
) -> None:
    order = accepted_order()
    transfer = started(order)
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)
    past_the_send_lease(transfer)

    workflow.payout_step(transfer_pk=transfer.pk)  # read: nothing yet; re-send: "insufficient funds"

    order.refresh_from_db()
    assert lagging_lenco.posts == [LENCO_REF_1, LENCO_REF_1]
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.CREATED)]
    assert (order.status, order.psp) == (OrderStatus.PAYING, "lenco")
    assert SandboxPayout.objects.count() == 0
    assert fulfil_statuses(order) == []
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("15000")

    lagging_lenco.visible = True
    past_the_send_lease(transfer)
    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.SUCCEEDED)]
    assert (order.status, order.psp) == (OrderStatus.PAID, "lenco")
    assert lagging_lenco.posts == [LENCO_REF_1, LENCO_REF_1]  # no third POST once a re-send was refused
    assert fulfil_statuses(order) == ["pending", "success"]
    assert SandboxPayout.objects.count() == 0


def test_refused_resend_with_one_psp_never_cancels_the_order(settings: Any, lenco_fake: HTTPServer) -> None:
    settings.PSP = ["lenco"]
    LaggingLenco(lenco_fake)
    order = accepted_order()
    transfer = started(order)
    past_the_send_lease(transfer)

    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING
    assert not order.outbox.filter(kind="cancel").exists()
    assert fulfil_statuses(order) == []


def test_a_refused_resend_is_never_sent_again_and_goes_to_review_after_the_review_window(
    lagging_lenco: LaggingLenco,
) -> None:
    order = accepted_order()
    transfer = started(order)
    past_the_send_lease(transfer)
    workflow.payout_step(transfer_pk=transfer.pk)
    Transfer.objects.filter(pk=transfer.pk).update(
        created_at=timezone.now() - services.PAYOUT_REVIEW_AFTER - timedelta(seconds=1)
    )
    past_the_send_lease(transfer)

    workflow.payout_step(transfer_pk=transfer.pk)  # still nothing at Lenco

    order.refresh_from_db()
    assert lagging_lenco.posts == [LENCO_REF_1, LENCO_REF_1]
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.UNKNOWN)]
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert SandboxPayout.objects.count() == 0
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("15000")


def test_a_send_within_its_lease_is_not_sent_again_by_a_second_delivery(
    lagging_lenco: LaggingLenco,
) -> None:
    order = accepted_order()
    transfer = started(order)

    workflow.payout_step(transfer_pk=transfer.pk)  # the same task delivered again at once
    workflow.payout_step(transfer_pk=transfer.pk)

    assert lagging_lenco.posts == [LENCO_REF_1]
    transfer.refresh_from_db()
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)


def test_pending_transfer_is_not_made_rejected_by_the_refusal_of_a_racing_send(
    lenco_then_sandbox: HTTPServer,
) -> None:
    """Two deliveries of one send: the first is acknowledged (pending), the second's POST is refused."""
    lenco_then_sandbox.expect_ordered_request(POST_TRANSFER, method="POST").respond_with_data(
        fixture("lenco", "v1_transfer_queued.json"), content_type=JSON
    )
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    transfer = Transfer.objects.get(order=order)
    refusal = PspRejected(
        "Insufficient funds in your account", psp="lenco", reason=FailureReason.INSUFFICIENT_FUNDS
    )

    workflow.payout_step(transfer_pk=transfer.pk)  # the first delivery: pending at Lenco
    order_services.order_apply_psp_answer(
        transfer_pk=transfer.pk, answer=services.PspAnswer(services.AnswerKind.REFUSED, error=refusal, send=2)
    )  # the racing one

    order.refresh_from_db()
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.PENDING)]
    assert order.status == OrderStatus.PAYING
    assert SandboxPayout.objects.count() == 0
    assert fulfil_statuses(order) == ["pending"]


def test_refusal_of_the_first_send_is_not_final_when_a_second_send_went_out_meanwhile(
    lenco_then_sandbox: HTTPServer,
) -> None:
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    transfer = Transfer.objects.get(order=order)
    Transfer.objects.filter(pk=transfer.pk).update(sends=2, last_sent_at=timezone.now())
    refusal = PspRejected(
        "Insufficient funds in your account", psp="lenco", reason=FailureReason.INSUFFICIENT_FUNDS
    )

    order_services.order_apply_psp_answer(
        transfer_pk=transfer.pk, answer=services.PspAnswer(services.AnswerKind.REFUSED, error=refusal, send=1)
    )

    order.refresh_from_db()
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.CREATED)]
    assert order.status == OrderStatus.PAYING
    assert SandboxPayout.objects.count() == 0


def test_read_lag_after_an_acknowledged_send_keeps_polling_instead_of_review(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    """Lenco (like MTN) took the transfer, and a read moments later does not show it yet."""
    settings.PSP = ["lenco"]
    lenco_fake.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        fixture("lenco", "v1_transfer_queued.json"), content_type=JSON
    )
    reads = iter([("v1_not_found.json", 400), ("v1_transfer_successful.json", 200)])

    def lagging_read(request: Request) -> Response:
        name, status = next(reads)
        return Response(fixture("lenco", name), status=status, content_type=JSON)

    lenco_fake.expect_request(GET_BY_REFERENCE, method="GET").respond_with_handler(lagging_read)
    order = accepted_order()
    transfer = started(order)
    assert transfer.status == TransferStatus.PENDING

    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    transfer.refresh_from_db()
    assert (transfer.status, order.status) == (TransferStatus.PENDING, OrderStatus.PAYING)
    assert transfer.next_check_at is not None

    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_acknowledged_transfer_the_psp_never_shows_goes_to_review_after_the_review_window(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    settings.PSP = ["lenco"]
    lenco_fake.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        fixture("lenco", "v1_transfer_queued.json"), content_type=JSON
    )
    lenco_fake.expect_request(GET_BY_REFERENCE, method="GET").respond_with_data(
        fixture("lenco", "v1_not_found.json"), status=400, content_type=JSON
    )
    order = accepted_order()
    transfer = started(order)
    Transfer.objects.filter(pk=transfer.pk).update(
        created_at=timezone.now() - services.PAYOUT_REVIEW_AFTER - timedelta(seconds=1)
    )

    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.UNKNOWN)]


def test_duplicate_answer_then_nothing_on_reads_is_not_sent_again_and_ends_in_review(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    settings.PSP = ["lenco"]
    lenco_fake.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        fixture("lenco", "v1_duplicate_reference.json"), status=400, content_type=JSON
    )
    lenco_fake.expect_request(GET_BY_REFERENCE, method="GET").respond_with_data(
        fixture("lenco", "v1_not_found.json"), status=400, content_type=JSON
    )
    order = accepted_order()
    transfer = started(order)
    for _ in range(3):
        past_the_send_lease(transfer)
        workflow.payout_step(transfer_pk=transfer.pk)

    posts = [request for request, _ in lenco_fake.log if request.method == "POST"]
    assert len(posts) == 1
    transfer.refresh_from_db()
    assert transfer.status == TransferStatus.PENDING  # Lenco says it has the reference

    Transfer.objects.filter(pk=transfer.pk).update(
        created_at=timezone.now() - services.PAYOUT_REVIEW_AFTER - timedelta(seconds=1)
    )
    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.NEEDS_REVIEW


def test_transfer_pending_at_the_psp_past_the_pending_limit_reaches_staff_and_is_still_polled(
    settings: Any, lenco_fake: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings.PSP = ["lenco"]
    lenco_fake.expect_request(POST_TRANSFER, method="POST").respond_with_data(
        fixture("lenco", "v1_transfer_queued.json"), content_type=JSON
    )
    lenco_fake.expect_request(GET_BY_REFERENCE, method="GET").respond_with_data(
        fixture("lenco", "v1_transfer_queued.json"), content_type=JSON
    )
    order = accepted_order()
    transfer = started(order)
    Transfer.objects.filter(pk=transfer.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.PAYOUT_PENDING_REVIEW_AFTER + 1)
    )

    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    transfer.refresh_from_db()
    assert order.status == OrderStatus.NEEDS_REVIEW
    assert transfer.status == TransferStatus.PENDING  # only Lenco's answer can end it
    assert transfer.next_check_at is not None
    assert "payout.pending_too_long" in [record.msg for record in caplog.records]
