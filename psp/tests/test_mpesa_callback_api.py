"""Daraja's callbacks through the node's view and the payout lane: a secret URL token, stored raw,
acknowledged as Daraja expects, and never trusted: a payment's callback only makes the transfer due, and
only a Transaction Status result (the answer to a query the node sent) moves the order."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from orders import workflow
from orders.models import Order, OrderStatus
from psp.models import DarajaRequest, Transfer, TransferStatus, WebhookEvent
from psp.tests.conformance.fakes import mpesa as fake_module
from psp.tests.conformance.fakes.mpesa import MpesaFake
from psp.tests.conformance.kit import Callback, Refusal, Send, Status
from psp.tests.helpers import accepted_order, fulfil_statuses, run_lane

pytestmark = pytest.mark.django_db
ORDER_KEY = "559028af-6e15-4b21-bab5-052a248db249"
REF = "pn559028af6e154b21bab5052a248db249-1"
REF_2 = "pn559028af6e154b21bab5052a248db249-2"


def post(client: Client, callback: Callback, capture: Any) -> Any:
    with capture(execute=True):
        return client.generic("POST", callback.path, data=callback.body, content_type="application/json")


def paying(*, amount: str = "1500") -> Order:
    """An accepted KES order to an M-Pesa wallet whose payout the lane has started and sent."""
    order = accepted_order(
        order_id=ORDER_KEY,
        amount=amount,
        funds="100000",
        currency="KES",
        institution="SAFAKEPC",
        account_identifier="0708374149",
    )
    workflow.payout_start(order_pk=order.pk)
    run_lane()
    order.refresh_from_db()
    return order


def read_now() -> None:
    """The lane's next read of the open transfers, without waiting for their back-off."""
    Transfer.objects.filter(status__in=("created", "pending")).update(next_check_at=timezone.now())
    run_lane()


# --- the view ---------------------------------------------------------------------------------------------


def test_a_wrong_token_is_404_and_nothing_is_stored(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    paying()
    mpesa_fake.finish(REF, Status.SUCCEEDED)

    answer = post(client, mpesa_fake.callback(REF, forged=True), django_capture_on_commit_callbacks)

    assert answer.status_code == 404
    assert WebhookEvent.objects.count() == 0
    assert DarajaRequest.objects.get(reference=REF, kind="payment").hinted_at is None


def test_callbacks_are_refused_when_mpesa_is_not_enabled(
    mpesa_fake: MpesaFake, client: Client, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    paying()
    callback = mpesa_fake.callback(REF)
    settings.PSP = ["sandbox"]

    answer = post(client, callback, django_capture_on_commit_callbacks)

    assert answer.status_code == 404
    assert WebhookEvent.objects.count() == 0


def test_an_unknown_kind_is_404(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    path = f"/webhooks/daraja/{fake_module.CALLBACK_TOKEN}/reversal/{REF}"

    answer = post(client, Callback(path=path, body=b"{}"), django_capture_on_commit_callbacks)

    assert answer.status_code == 404
    assert WebhookEvent.objects.count() == 0


def test_a_payment_callback_is_acknowledged_stored_and_only_makes_the_transfer_due(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = paying()
    mpesa_fake.finish(REF, Status.SUCCEEDED)
    Transfer.objects.update(next_check_at=timezone.now() + timedelta(minutes=5))

    answer = post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)

    assert answer.status_code == 200
    assert answer.json() == {
        "status": "success",
        "message": "Received",
        "data": None,
        "ResultCode": 0,
        "ResultDesc": "Accepted",
    }
    event = WebhookEvent.objects.get()
    assert (event.psp, event.event_type, event.reference, event.outcome) == (
        "mpesa",
        "payment",
        REF,
        "hint:read_due",
    )
    transfer = Transfer.objects.get()
    assert transfer.status == TransferStatus.PENDING
    assert transfer.next_check_at is not None
    assert transfer.next_check_at <= timezone.now()
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING


def test_the_same_callback_twice_is_stored_once(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    paying()
    callback = mpesa_fake.callback(REF)

    answers = [post(client, callback, django_capture_on_commit_callbacks).status_code for _ in range(2)]

    assert answers == [200, 200]
    assert WebhookEvent.objects.count() == 1


# --- through the payout lane --------------------------------------------------------------------------------


def test_an_mpesa_order_is_paid_once_safaricom_confirms_by_status_query(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = paying()
    assert [t.reference for t in Transfer.objects.all()] == [REF]
    mpesa_fake.finish(REF, Status.SUCCEEDED)

    post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)  # the payment's Result: a hint
    run_lane()  # the read asks Daraja
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING
    post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)  # the status query's result
    run_lane()  # the read takes Safaricom's answer

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert order.psp == "mpesa"
    assert fulfil_statuses(order) == ["pending", "success"]
    assert Transfer.objects.get().psp_transaction_id == mpesa_fake.payouts[REF].psp_id
    assert mpesa_fake.posts() == 1


def test_a_forged_success_with_the_right_token_does_not_pay_the_order(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = paying()  # the payout is still pending at Safaricom
    body = json.loads(mpesa_fake.callback(REF).body)
    body["Result"].update({"ResultCode": 0, "ResultDesc": "The service request is processed successfully."})
    path = f"/webhooks/daraja/{fake_module.CALLBACK_TOKEN}/payment/{REF}"

    post(client, Callback(path=path, body=json.dumps(body).encode()), django_capture_on_commit_callbacks)
    run_lane()
    post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)  # Safaricom: Initiated
    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING
    assert Transfer.objects.get().status == TransferStatus.PENDING


def test_a_declined_payment_fails_the_order_only_on_safaricoms_status_answer(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    order = paying()
    mpesa_fake.finish(REF, Status.FAILED)

    post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)
    run_lane()
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING
    post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)
    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert fulfil_statuses(order) == ["pending", "failed"]
    assert mpesa_fake.posts() == 1


def test_a_send_that_never_arrived_is_sent_again_with_the_same_reference_after_not_found(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    mpesa_fake.script_send(Send.TIMEOUT_BEFORE_COMMIT)
    order = paying()
    transfer = Transfer.objects.get()
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)

    read_now()  # no answer yet: the read asks; the transfer stays open
    assert Transfer.objects.get().status == TransferStatus.CREATED
    post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)  # not found
    Transfer.objects.update(last_sent_at=timezone.now() - timedelta(minutes=2))  # send lease over
    read_now()  # not found: sent again, same reference
    mpesa_fake.settle()

    assert Transfer.objects.get().status == TransferStatus.PENDING
    assert [payout.reference for payout in mpesa_fake.held()] == [REF]
    assert mpesa_fake.posts() == 2
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING


def test_a_send_that_arrived_despite_the_timeout_is_never_sent_again(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    mpesa_fake.script_send(Send.TIMEOUT_AFTER_COMMIT)
    paying()

    read_now()
    post(client, mpesa_fake.callback(REF), django_capture_on_commit_callbacks)  # Initiated
    Transfer.objects.update(last_sent_at=timezone.now() - timedelta(minutes=2))
    read_now()
    mpesa_fake.settle()

    assert Transfer.objects.get().status == TransferStatus.PENDING
    assert mpesa_fake.posts() == 1


def test_an_invalid_recipient_refused_at_once_cancels_without_failover(
    mpesa_fake: MpesaFake, settings: Any
) -> None:
    settings.PSP = ["mpesa", "sandbox"]
    mpesa_fake.script_send(Refusal.RECIPIENT_INVALID)

    order = paying()

    assert order.status == OrderStatus.CANCELLED
    assert [(t.psp, t.status) for t in Transfer.objects.all()] == [("mpesa", TransferStatus.REJECTED)]


def test_insufficient_funds_refused_at_once_fails_over(mpesa_fake: MpesaFake, settings: Any) -> None:
    settings.PSP = ["mpesa", "sandbox"]
    mpesa_fake.script_send(Refusal.INSUFFICIENT_FUNDS)

    order = paying()

    assert sorted((t.psp, t.attempt, t.status) for t in Transfer.objects.all()) == [
        ("mpesa", 1, TransferStatus.REJECTED),
        ("sandbox", 2, TransferStatus.SUCCEEDED),
    ]
    assert order.status == OrderStatus.PAID
    assert REF_2 not in mpesa_fake.payouts
