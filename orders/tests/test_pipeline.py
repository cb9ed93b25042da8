"""One worker task carries an order from received to fulfilled; tasks are queued with the transaction
that makes them necessary. These tests run django-q2 unsynchronised (as in production), so what is
queued can be read from the ORM broker's table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ, Success
from django_q.signing import SignedPackage

from orders import dispatch, outbox, services, tasks
from orders.models import OrderStatus, OutboxKind, OutboxMessage, OutboxStatus
from orders.tests.conftest import AggregatorFake, accept_data
from orders.tests.factories import OrderFactory, new_order_offer
from provision import queue, request_context
from psp.models import SandboxPayout

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unsynced(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    settings.PSP = ["sandbox"]


def queued() -> list[tuple[str, dict[str, Any]]]:
    tasks_ = [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]
    return [(task["func"], task["kwargs"]) for task in tasks_]


def enqueue_fulfils(order: Any) -> None:
    """Fulfil pending then success for the order, as a paid payout writes them."""
    for status in ("pending", "success"):
        outbox.outbox_enqueue(
            kind=OutboxKind.FULFIL,
            dedupe_key=f"fulfil:{order.order_id}:{status}",
            path=f"orders/{order.order_id}/fulfill",
            payload={"psp": "sandbox", "txId": "SBX1", "validationStatus": status},
            order=order,
        )


def offered_order(aggregator: AggregatorFake, *, fulfil_status: int = 200) -> Any:
    """An order offered to the node, with the aggregator accepting it and answering fulfils and balances."""
    order, _ = services.order_receive(offer=new_order_offer())
    aggregator.on(f"/v1/provider/orders/{order.order_id}/accept", 201, accept_data(order.order_id))
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", fulfil_status)
    aggregator.on("/v1/provider/balances", 200)
    return order


def test_a_received_order_gets_exactly_one_queued_task_to_process_it_from_the_dispatcher(
    unsynced: None,
) -> None:
    order, created = services.order_receive(offer=new_order_offer())

    assert created
    assert queued() == []  # the offer's request only stores the order
    assert dispatch.dispatch_received() == 1
    assert queued() == [("orders.tasks.order_process", {"order_pk": order.pk})]
    assert dispatch.dispatch_received() == 0
    assert queued() == [("orders.tasks.order_process", {"order_pk": order.pk})]


def test_a_queued_task_is_the_package_django_q2_takes_off_its_queue_when_due(unsynced: None) -> None:
    from django_q.brokers import get_broker

    token = request_context.set_request_id("offer-request-1")
    try:
        order, _ = services.order_receive(offer=new_order_offer())
        queue.enqueue("orders.tasks.sweep", task_name="later", at=timezone.now() + timedelta(hours=1))
    finally:
        request_context.reset_request_id(token)

    taken = get_broker().dequeue()  # django-q2's own dequeue: only rows whose time has come

    assert len(taken) == 1
    task = SignedPackage.loads(taken[0][1])
    assert task["func"] == "orders.tasks.order_process"
    assert task["kwargs"] == {"order_pk": order.pk}
    assert task["args"] == ()
    assert task["name"] == f"order_process:{order.pk}"
    assert task["ack_failure"] is True  # Q_CLUSTER's ack_failures, as async_task would set it
    assert task["request_id"] == "offer-request-1"  # the log correlation id travels with the task
    assert len(task["id"]) == 32
    assert OrmQ.objects.count() == 2  # the delayed one waits in the queue


def test_a_task_queued_in_a_transaction_that_rolls_back_is_not_queued(unsynced: None) -> None:
    seen_inside: list[object] = []

    def business_write_that_fails() -> None:
        with transaction.atomic():
            queue.enqueue("orders.tasks.sweep", task_name="sweep")
            seen_inside.extend(queued())  # written in this transaction, not by an on-commit hook
            raise RuntimeError("the business write failed")

    with pytest.raises(RuntimeError):
        business_write_that_fails()

    assert seen_inside == [("orders.tasks.sweep", {})]

    assert queued() == []


def test_one_delivery_run_is_queued_for_every_outbox_row_written_in_one_transaction(unsynced: None) -> None:
    order = OrderFactory.create()
    with transaction.atomic():
        enqueue_fulfils(order)
        outbox.outbox_enqueue_balance_report(currency="NGN")

    assert queued() == [("orders.tasks.outbox_deliver_due", {})]


def test_one_task_takes_an_order_from_received_to_fulfilled_and_queues_nothing_more(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    order = offered_order(aggregator)

    status = tasks.order_process(order_pk=order.pk)

    assert status == OrderStatus.FULFILLED
    assert queued() == []
    fulfils = [p["validationStatus"] for path, p in aggregator.calls if path.endswith("/fulfill")]
    assert fulfils == ["pending", "success"]
    assert SandboxPayout.objects.count() == 1
    assert not OutboxMessage.objects.filter(order=order).exclude(status=OutboxStatus.DELIVERED).exists()


def test_a_task_run_again_after_its_order_is_done_changes_nothing(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    order = offered_order(aggregator)
    tasks.order_process(order_pk=order.pk)
    calls = len(aggregator.calls)

    assert tasks.order_process(order_pk=order.pk) == OrderStatus.FULFILLED
    assert len(aggregator.calls) == calls
    assert SandboxPayout.objects.count() == 1


def test_when_the_aggregator_is_down_the_task_stops_and_schedules_the_outbox_retry(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    from django_q.models import Schedule

    order = offered_order(aggregator, fulfil_status=503)

    assert tasks.order_process(order_pk=order.pk) == OrderStatus.PAID

    pending = OutboxMessage.objects.get(order=order, dedupe_key__endswith=":pending")
    assert pending.status == OutboxStatus.PENDING
    assert pending.attempts == 1
    retry = Schedule.objects.get(name="outbox_retry")
    assert retry.func == "orders.tasks.outbox_deliver_due"
    assert retry.next_run >= pending.next_attempt_at - timedelta(seconds=1)


def test_successful_task_results_older_than_a_day_are_purged_and_newer_ones_kept(db: None) -> None:
    now = timezone.now()
    for name, age in (("old", timedelta(days=2)), ("new", timedelta(hours=1))):
        Success.objects.create(
            id=name * 4,
            name=name,
            func="orders.tasks.sweep",
            started=now - age,
            stopped=now - age,
            success=True,
        )

    assert tasks.purge_task_results() == 1
    assert list(Success.objects.values_list("name", flat=True)) == ["new"]


def test_a_balance_report_waits_a_second_and_covers_every_change_of_that_second(
    unsynced: None, settings: Any
) -> None:
    settings.BALANCE_REPORT_DELAY = 1
    before = timezone.now()
    with transaction.atomic():
        first = outbox.outbox_enqueue_balance_report(currency="NGN")
    with transaction.atomic():
        second = outbox.outbox_enqueue_balance_report(currency="NGN")

    assert second.pk == first.pk  # one report for both changes
    assert first.next_attempt_at >= before + timedelta(seconds=1)
    (row,) = OrmQ.objects.all()  # one delivery run, which the cluster takes only when the report is due
    assert SignedPackage.loads(row.payload)["func"] == "orders.tasks.outbox_deliver_due"
    assert row.lock >= first.next_attempt_at - timedelta(milliseconds=50)
    assert outbox.outbox_deliver_due(kind=OutboxKind.BALANCES) == 0  # not yet


def test_an_order_whose_pending_fulfil_fails_keeps_its_final_fulfil_untried_behind_it(
    unsynced: None, aggregator: AggregatorFake
) -> None:
    order = OrderFactory.create()
    with transaction.atomic():
        enqueue_fulfils(order)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 503)

    assert outbox.outbox_deliver_order(order_pk=order.pk) == outbox.Delivered(delivered=0, left=True)

    pending, final = OutboxMessage.objects.filter(order=order).order_by("pk")
    assert [p["validationStatus"] for _, p in aggregator.calls] == ["pending"]
    assert (pending.attempts, pending.status) == (1, OutboxStatus.PENDING)
    assert pending.next_attempt_at > timezone.now()  # backing off
    assert (final.attempts, final.status) == (0, OutboxStatus.PENDING)  # never sent before the pending one
