"""Received orders are the worker's queue: an offer is stored with one INSERT, and the dispatcher (run by
the cluster's broker before it hands out tasks) queues one ``order_process`` task per received order.
django-q2 runs unsynchronised here, as in production, so the queue table can be read."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from orders import dispatch, services
from orders.broker import OrderQueueBroker
from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory, new_order_offer
from provision import queue, request_context

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unsynced(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)


def queued() -> list[dict[str, Any]]:
    return [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]


def test_an_offer_is_stored_with_one_insert_and_nothing_else(unsynced: None) -> None:
    with CaptureQueriesContext(connection) as statements:
        order, created = services.order_receive(offer=new_order_offer("order-1"))

    assert created
    assert [q["sql"].split()[0] for q in statements.captured_queries] == ["INSERT"]
    assert (order.status, order.queued_at) == (OrderStatus.RECEIVED, None)
    assert queued() == []


def test_the_dispatcher_queues_each_received_order_once_oldest_first(unsynced: None) -> None:
    first, _ = services.order_receive(offer=new_order_offer("order-1"))
    second, _ = services.order_receive(offer=new_order_offer("order-2"))
    OrderFactory.create(status=OrderStatus.ACCEPTED)  # not waiting: never queued by the dispatcher

    assert dispatch.dispatch_received() == 2
    assert dispatch.dispatch_received() == 0

    assert [(task["func"], task["kwargs"]) for task in queued()] == [
        ("orders.tasks.order_process", {"order_pk": first.pk}),
        ("orders.tasks.order_process", {"order_pk": second.pk}),
    ]
    assert Order.objects.filter(status=OrderStatus.RECEIVED, queued_at__isnull=True).count() == 0


def test_a_task_runs_with_the_request_id_of_the_offer_that_brought_its_order(unsynced: None) -> None:
    token = request_context.set_request_id("aggregator-offer-17")
    try:
        services.order_receive(offer=new_order_offer("order-1"))
    finally:
        request_context.reset_request_id(token)

    dispatch.dispatch_received()  # in the worker: no request in progress

    [task] = queued()
    assert task["request_id"] == "aggregator-offer-17"


def test_an_order_task_stores_no_success_row_but_keeps_its_failure(unsynced: None) -> None:
    from django.utils import timezone
    from django_q.models import Failure, Success
    from django_q.monitor import save_task

    services.order_receive(offer=new_order_offer("order-1"))
    dispatch.dispatch_received()
    [package] = queued()
    finished = {**package, "stopped": timezone.now(), "result": "fulfilled", "success": True}

    save_task(finished, get_broker())  # what the cluster's monitor does with a finished task
    assert Success.objects.count() == 0

    save_task({**finished, "result": "Traceback ...", "success": False}, get_broker())
    assert list(Failure.objects.values_list("name", "result")) == [(package["name"], "Traceback ...")]


def test_the_cluster_broker_dispatches_before_it_hands_out_tasks(unsynced: None) -> None:
    order, _ = services.order_receive(offer=new_order_offer("order-1"))
    broker = get_broker()

    assert isinstance(broker, OrderQueueBroker)
    [(_, payload)] = broker.dequeue()
    assert SignedPackage.loads(payload)["kwargs"] == {"order_pk": order.pk}


def test_the_broker_hands_out_new_orders_tasks_already_claimed_for_its_cluster(unsynced: None) -> None:
    from django.utils import timezone
    from django_q.conf import Conf

    orders = [services.order_receive(offer=new_order_offer(f"order-{n}"))[0] for n in range(12)]
    broker = get_broker()

    first = broker.dequeue()
    assert [SignedPackage.loads(payload)["kwargs"]["order_pk"] for _, payload in first] == [
        order.pk for order in orders[: dispatch.CLAIM_LIMIT]
    ]
    # Written to the queue table locked for this cluster (django-q2 redelivers them once the lock has
    # passed, should this cluster die), so no dequeue hands them out a second time meanwhile.
    rows = OrmQ.objects.filter(pk__in=[pk for pk, _ in first])
    assert rows.count() == dispatch.CLAIM_LIMIT
    assert all(row.lock > timezone.now() + timedelta(seconds=Conf.RETRY - 5) for row in rows)

    broker._dispatched_at = 0.0  # the next look at the orders table is due
    second = broker.dequeue()
    assert [SignedPackage.loads(payload)["kwargs"]["order_pk"] for _, payload in second] == [
        order.pk for order in orders[dispatch.CLAIM_LIMIT :]
    ]
    assert broker.dequeue() is None  # nothing new, nothing unclaimed in the queue table
    broker.acknowledge(first[0][0])
    assert OrmQ.objects.count() == 11


def test_a_dispatch_that_fails_queues_nothing_and_leaves_the_orders_waiting(
    unsynced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.order_receive(offer=new_order_offer("order-1"))

    def queue_down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("queue table unavailable")

    monkeypatch.setattr(queue, "insert_tasks", queue_down)
    with pytest.raises(RuntimeError):
        dispatch.dispatch_received()
    monkeypatch.undo()

    assert Order.objects.get().queued_at is None
    assert queued() == []
    assert dispatch.dispatch_received() == 1  # the next look queues it


def test_a_broker_whose_dispatch_fails_still_hands_out_queued_tasks(
    unsynced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue.enqueue("orders.tasks.sweep", task_name="sweep")
    services.order_receive(offer=new_order_offer("order-1"))
    monkeypatch.setattr(dispatch, "claim_received", lambda **kwargs: 1 / 0)

    [(_, payload)] = get_broker().dequeue()

    assert SignedPackage.loads(payload)["func"] == "orders.tasks.sweep"


@pytest.mark.postgres
def test_two_dispatchers_never_claim_the_same_order(unsynced: None) -> None:
    services.order_receive(offer=new_order_offer("order-1"))
    other: list[int] = []

    def other_cluster() -> None:
        try:
            other.append(dispatch.dispatch_received())
        finally:
            connection.close()  # this thread's own connection

    with transaction.atomic():
        Order.objects.select_for_update().get()  # what a dispatcher in another cluster holds mid-claim
        thread = threading.Thread(target=other_cluster)
        thread.start()
        thread.join(10)

    assert other == [0]  # skipped the locked order instead of queueing it a second time
    assert dispatch.dispatch_received() == 1
    assert len(queued()) == 1
