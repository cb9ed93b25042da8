"""Sandbox webhooks: posted by a task after commit, signed like Lenco, verified by the real view."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from orders import services as order_services
from orders.models import OrderStatus
from psp import sandbox, tasks
from psp.base import PayoutRequest, Recipient
from psp.models import SandboxPayout, Transfer, TransferStatus, WebhookEvent
from psp.tests.helpers import SANDBOX_REF_1, accepted_order, run_lane

pytestmark = pytest.mark.django_db
SECRET = "sandbox-test-webhook-secret"
HOOK_PATH = "/webhooks/sandbox"
WEBHOOK_LAST_ATTEMPT = sandbox.WEBHOOK_ATTEMPTS


@pytest.fixture
def node_hook(settings: Any, httpserver: HTTPServer) -> HTTPServer:
    """Where the sandbox posts its webhooks: a real local server that records what it gets."""
    settings.PSP = ["sandbox"]
    settings.SANDBOX_WEBHOOK_URL = httpserver.url_for(HOOK_PATH)
    settings.SANDBOX_WEBHOOK_SECRET = SECRET
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=200)
    return httpserver


def expected_signature(body: bytes) -> str:
    key = hashlib.sha256(SECRET.encode()).hexdigest().encode()
    return hmac.new(key, body, hashlib.sha512).hexdigest()


def replay(client: Client, request: Request, *, signature: str | None = None) -> Any:
    """POST exactly what the sandbox sent (raw bytes, its signature header) to the node's real view."""
    return client.generic(
        "POST",
        HOOK_PATH,
        data=request.get_data(),
        content_type="application/json",
        HTTP_X_SANDBOX_SIGNATURE=signature or request.headers["X-Sandbox-Signature"],
    )


def test_final_sandbox_payout_posts_a_signed_event_after_commit(
    node_hook: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    [(request, _)] = node_hook.log
    body = request.get_data()
    payout = SandboxPayout.objects.get()
    assert request.headers["X-Sandbox-Signature"] == expected_signature(body)
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "event": "transfer.successful",
        "data": {
            "id": payout.transaction_id,
            "reference": SANDBOX_REF_1,
            "status": "successful",
            "amount": "15000.0000",
            "currency": "NGN",
            "reasonForFailure": None,
            "completedAt": payout.complete_at.isoformat().replace("+00:00", "Z"),
        },
    }


def test_webhook_is_enqueued_on_commit_not_inside_the_payout_transaction(
    node_hook: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    request = PayoutRequest(
        reference="pn-hook-1",
        amount=Decimal("10"),
        currency="NGN",
        recipient=Recipient(institution="ABNGNGLA", account_identifier="0123451111"),
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sandbox.SandboxAdapter().initiate_payout(request)
    assert node_hook.log == []

    callbacks[0]()

    [(posted, _)] = node_hook.log
    assert json.loads(posted.get_data())["data"]["reasonForFailure"] == "Insufficient funds in your account"
    assert json.loads(posted.get_data())["event"] == "transfer.failed"


def test_sandbox_webhook_through_the_view_is_stored_and_settles_the_pending_transfer(
    settings: Any, node_hook: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SANDBOX_LATENCY_SECONDS = 3600
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    payout = SandboxPayout.objects.get()
    assert node_hook.log == []
    schedule = Schedule.objects.get(name=f"sandbox_webhook:{payout.pk}")
    assert (schedule.func, ast.literal_eval(schedule.kwargs), schedule.next_run) == (
        "psp.tasks.sandbox_webhook_send",
        {"payout_pk": payout.pk, "attempt": 1},
        payout.complete_at,
    )
    SandboxPayout.objects.update(complete_at=timezone.now() - timedelta(seconds=1))
    assert tasks.sandbox_webhook_send(payout_pk=payout.pk) == "delivered"
    [(sent, _)] = node_hook.log

    with django_capture_on_commit_callbacks(execute=True):
        response = replay(client, sent)
    run_lane()  # the payout lane reads the transfer the webhook made due

    assert (response.status_code, response.json()["message"]) == (200, "Received")
    event = WebhookEvent.objects.get()
    assert (event.psp, event.event_type, event.reference, event.signature_valid, event.outcome) == (
        "sandbox",
        "transfer.successful",
        SANDBOX_REF_1,
        True,
        "read_due",
    )
    assert event.body == sent.get_data().decode()
    order.refresh_from_db()
    assert (order.status, Transfer.objects.get(order=order).status) == (
        OrderStatus.PAID,
        TransferStatus.SUCCEEDED,
    )


def test_same_sandbox_webhook_twice_is_stored_once(
    node_hook: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    [(sent, _)] = node_hook.log

    with django_capture_on_commit_callbacks(execute=True):
        messages = [replay(client, sent).json()["message"] for _ in range(2)]

    assert messages == ["Received", "Duplicate event"]
    # The transfer had already succeeded: the webhook still makes it due for one read (a later event
    # may announce a reversal), which changes nothing here.
    assert WebhookEvent.objects.get().outcome == "read_due"
    run_lane()
    assert Transfer.objects.get(order=order).status == TransferStatus.SUCCEEDED
    assert Transfer.objects.get(order=order).next_check_at is None


def test_badly_signed_sandbox_webhook_is_401_and_changes_nothing(
    settings: Any, node_hook: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SANDBOX_LATENCY_SECONDS = 3600
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    SandboxPayout.objects.update(complete_at=timezone.now() - timedelta(seconds=1))
    tasks.sandbox_webhook_send(payout_pk=SandboxPayout.objects.get().pk)
    [(sent, _)] = node_hook.log

    response = replay(client, sent, signature=expected_signature(b"another body"))

    assert response.status_code == 401
    assert list(WebhookEvent.objects.values_list("signature_valid", "reference")) == [(False, "")]
    assert Transfer.objects.get(order=order).status == TransferStatus.PENDING


def test_no_webhook_is_sent_when_no_url_is_configured(
    settings: Any, httpserver: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SANDBOX_WEBHOOK_URL = ""
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    assert tasks.sandbox_webhook_send(payout_pk=SandboxPayout.objects.get().pk) == "disabled"
    assert not Schedule.objects.filter(name__startswith="sandbox_webhook:").exists()
    assert httpserver.log == []


def test_stuck_sandbox_payout_sends_no_webhook(
    node_hook: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    order = accepted_order(account_identifier="0123459999")

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    assert node_hook.log == []
    assert not Schedule.objects.filter(name__startswith="sandbox_webhook:").exists()
    assert tasks.sandbox_webhook_send(payout_pk=SandboxPayout.objects.get().pk) == "not_final"


def test_refused_delivery_is_retried_later_then_abandoned(
    settings: Any, httpserver: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SANDBOX_WEBHOOK_URL = httpserver.url_for(HOOK_PATH)
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("nope", status=500)
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    payout = SandboxPayout.objects.get()
    schedule = Schedule.objects.get(name=f"sandbox_webhook:{payout.pk}")
    assert ast.literal_eval(schedule.kwargs) == {"payout_pk": payout.pk, "attempt": 2}

    outcomes = [tasks.sandbox_webhook_send(payout_pk=payout.pk, attempt=attempt) for attempt in (2, 3)]

    assert outcomes == ["retry", "abandoned"]
    assert len(httpserver.log) == 3


def test_slow_receiver_is_given_up_after_the_bounded_timeout(
    settings: Any, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
) -> None:
    settings.SANDBOX_WEBHOOK_URL = httpserver.url_for(HOOK_PATH)
    monkeypatch.setattr(sandbox, "WEBHOOK_TIMEOUT", (1.0, 0.2))

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("", status=200)

    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_handler(slow)
    payout = SandboxPayout.objects.create(
        reference="pn-slow-1",
        transaction_id="SBXSLOW",
        amount=Decimal("10"),
        currency="NGN",
        account_identifier="0123456789",
        status="successful",
        complete_at=timezone.now(),
    )
    started = time.monotonic()

    outcome = tasks.sandbox_webhook_send(payout_pk=payout.pk, attempt=WEBHOOK_LAST_ATTEMPT)

    assert outcome == "abandoned"
    assert time.monotonic() - started < 0.5
    while not httpserver.log and time.monotonic() - started < 3:  # let the slow handler finish: the
        time.sleep(0.05)  # fake server is single-threaded and the next test must not queue behind it


def test_signed_event_that_is_not_about_a_payout_is_acknowledged_and_ignored(
    node_hook: HTTPServer, client: Client
) -> None:
    body = json.dumps({"event": "account.balance-updated", "data": {}}).encode()

    response = client.generic(
        "POST",
        HOOK_PATH,
        data=body,
        content_type="application/json",
        HTTP_X_SANDBOX_SIGNATURE=expected_signature(body),
    )

    assert (response.status_code, response.json()["message"]) == (200, "Ignored")
    assert not WebhookEvent.objects.exists()
