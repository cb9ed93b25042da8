"""The outbox delivers every owed call until the aggregator answers for good, with fresh signatures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from werkzeug import Request, Response

from orders.models import OrderStatus, OutboxKind, OutboxMessage, OutboxStatus
from orders.services import delivery, outbox
from orders.tests.conftest import AggregatorFake
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def _fulfil_row(order: Any, status: str = "success") -> OutboxMessage:
    return outbox.outbox_enqueue(
        kind=OutboxKind.FULFIL,
        dedupe_key=f"fulfil:{order.order_id}:{status}",
        path=f"orders/{order.order_id}/fulfill",
        payload={"psp": "sandbox", "txId": "SBX1", "validationStatus": status, "transactionHash": "SBX1"},
        order=order,
    )


def _drain(rounds: int = 10) -> None:
    later = timezone.now()
    for _ in range(rounds):
        later += timedelta(minutes=10)
        while delivery.outbox_deliver_one(now=later):
            pass


def test_fulfil_is_delivered_once_after_the_aggregator_failed_several_times(
    aggregator: AggregatorFake,
) -> None:
    order = OrderFactory.create()
    _fulfil_row(order)
    answers = iter([500, 502, 503, 200])
    timestamps: list[object] = []

    def flaky(request: Request) -> Response:
        payload = aggregator.verify(request)
        timestamps.append(payload["timestamp"])
        status = next(answers)
        return Response(
            '{"status":"success","message":"ok","data":null}' if status == 200 else "", status=status
        )

    aggregator.server.expect_request(f"/v1/provider/orders/{order.order_id}/fulfill").respond_with_handler(
        flaky
    )

    _drain()

    message = OutboxMessage.objects.get(order=order)
    assert message.status == OutboxStatus.DELIVERED
    assert message.attempts == 4
    assert len(aggregator.calls) == 4
    assert all(payload["txId"] == "SBX1" for _, payload in aggregator.calls)


def test_each_attempt_is_signed_afresh(aggregator: AggregatorFake, settings: Any) -> None:
    order = OrderFactory.create()
    _fulfil_row(order)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 500, times=1)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 200, times=1)
    from orders.clients.aggregator import AggregatorClient, AggregatorConfig

    clock = iter([1_800_000_000.0, 1_800_000_400.0])
    client = AggregatorClient(AggregatorConfig.from_settings(), clock=lambda: next(clock))

    delivery.outbox_deliver_one(client=client, now=timezone.now())
    delivery.outbox_deliver_one(client=client, now=timezone.now() + timedelta(minutes=5))

    assert [payload["timestamp"] for _, payload in aggregator.calls] == [1_800_000_000, 1_800_000_400]


def test_a_4xx_refusal_is_final_and_visible(aggregator: AggregatorFake) -> None:
    order = OrderFactory.create()
    _fulfil_row(order)
    aggregator.on(
        f"/v1/provider/orders/{order.order_id}/fulfill", 400, [{"field": "TxID", "message": "required"}]
    )

    _drain()

    message = OutboxMessage.objects.get(order=order)
    assert (message.status, message.attempts, message.last_status_code) == (OutboxStatus.REFUSED, 1, 400)


def test_429_is_retried(aggregator: AggregatorFake) -> None:
    order = OrderFactory.create()
    _fulfil_row(order)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 429, times=1)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 200, times=1)

    _drain()

    assert OutboxMessage.objects.get(order=order).status == OutboxStatus.DELIVERED


def test_connection_refused_is_retried_without_loss(settings: Any) -> None:
    settings.AGGREGATOR_BASE_URL = "http://127.0.0.1:9"
    order = OrderFactory.create()
    _fulfil_row(order)

    delivery.outbox_deliver_one(now=timezone.now())

    message = OutboxMessage.objects.get(order=order)
    assert (message.status, message.attempts) == (OutboxStatus.PENDING, 1)
    assert message.next_attempt_at > timezone.now()


def test_pending_fulfil_goes_before_success(aggregator: AggregatorFake) -> None:
    order = OrderFactory.create()
    _fulfil_row(order, "pending")
    _fulfil_row(order, "success")
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 500, times=1)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 200, times=2)

    _drain()

    statuses = [payload["validationStatus"] for _, payload in aggregator.calls]
    assert statuses == ["pending", "pending", "success"]


def test_enqueue_is_idempotent_on_its_key() -> None:
    order = OrderFactory.create()

    first = _fulfil_row(order)
    second = _fulfil_row(order)

    assert first.pk == second.pk
    assert OutboxMessage.objects.count() == 1


def test_balance_reports_coalesce_and_carry_strings(aggregator: AggregatorFake, funded: None) -> None:
    with transaction.atomic():
        outbox.outbox_enqueue_balance_report(currency="NGN")
        outbox.outbox_enqueue_balance_report(currency="NGN")
    aggregator.on("/v1/provider/balances", 200)

    _drain()

    assert len(aggregator.calls) == 1
    payload = aggregator.calls[0][1]
    assert {k: payload[k] for k in ("currency", "availableBalance", "totalBalance", "reservedBalance")} == {
        "currency": "NGN",
        "availableBalance": "100000",
        "totalBalance": "100000",
        "reservedBalance": "0",
    }


def test_delivered_success_fulfil_marks_a_paid_order_fulfilled(
    aggregator: AggregatorFake, django_capture_on_commit_callbacks: Any
) -> None:
    order = OrderFactory.create()
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.PAID)
    _fulfil_row(order)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 200)

    with django_capture_on_commit_callbacks(execute=True):
        _drain(1)

    order.refresh_from_db()
    assert order.status == OrderStatus.FULFILLED


def test_replay_sends_a_refused_row_again(aggregator: AggregatorFake) -> None:
    order = OrderFactory.create()
    message = _fulfil_row(order)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 400, times=1)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 200, times=1)
    _drain(1)

    outbox.outbox_replay(message_id=message.pk)
    _drain(1)

    message.refresh_from_db()
    assert message.status == OutboxStatus.DELIVERED


def test_each_thread_keeps_one_aggregator_session_with_the_proxy_environment_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    import requests

    from orders.clients.aggregator import shared_session

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    seen: list[requests.Session] = []
    worker = threading.Thread(target=lambda: seen.append(shared_session("https://agg.test")))
    worker.start()
    worker.join()
    (session,) = seen

    assert session.proxies.get("https") == "http://127.0.0.1:3128"
    assert session.trust_env is False  # the environment is not rescanned on every request
    assert shared_session("https://agg.test") is shared_session("https://agg.test")
    assert shared_session("https://agg.test") is not session
