"""An order's journey through the lane, with django-q2 unsynchronised (as in production): work is made
due (or queued) with the transaction that makes it necessary, and each lane pass, and each queued task,
is run here by hand to see exactly what each step does and leaves due.

These tests read django-q2's ORM queue table (``OrmQ``, through its own accessors) to see what was
queued: that a task is written in the business transaction is the property under test, and that an
offer queues none (the lane finds it due).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ, Success

from orders import payout_lane, services, tasks, workflow
from orders.models import Order, OrderStatus, OutboxKind, OutboxMessage, OutboxStatus
from orders.tests.conftest import AggregatorFake, accept_data
from orders.tests.factories import OrderFactory, new_order_offer
from provision import queue, request_context
from psp.models import SandboxPayout

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unsynced(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 as in production: queued tasks wait in the ORM broker's table (django-q2 reads its
    ``sync`` flag once, into ``Conf``, so the test sets it there too)."""
    from django_q.conf import Conf

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.PSP = ["sandbox"]


def queued() -> list[tuple[str, dict[str, Any]]]:
    return [(row.func(), row.kwargs()) for row in OrmQ.objects.order_by("id")]


def run_queued() -> list[str]:
    """Run every queued task once, oldest first, as the cluster would (what they queue waits)."""
    rows = list(OrmQ.objects.order_by("id"))
    OrmQ.objects.filter(pk__in=[row.pk for row in rows]).delete()
    for row in rows:
        import_string(row.func())(**row.kwargs())
    return [row.func() for row in rows]


def run_accepts() -> list[str]:
    """Run the lane's accept threads' work once, here: every offer due to be decided or accepted."""
    return [workflow.order_advance(order_pk=pk) for pk in services.orders_claim_accept_due(limit=100)]


def run_lane_until_idle() -> int:
    """Run the payout lane's due work pass after pass until a pass finds nothing; items run."""
    ran = 0
    for _ in range(10):
        done = payout_lane.run_due_once()
        if not done:
            return ran
        ran += done
    raise AssertionError("the payout lane still finds work after 10 passes")


def offered_order(aggregator: AggregatorFake, *, fulfil_status: int = 200) -> Order:
    """An order offered to the node, with the aggregator accepting it and answering fulfils and balances."""
    order, _ = services.order_receive(offer=new_order_offer())
    aggregator.on(f"/v1/provider/orders/{order.order_id}/accept", 201, accept_data(order.order_id))
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", fulfil_status)
    aggregator.on("/v1/provider/balances", 200)
    return order


def test_a_received_order_is_due_for_the_lane_with_the_transaction_that_stores_it(unsynced: None) -> None:
    token = request_context.set_request_id("offer-request-1")
    try:
        order, created = services.order_receive(offer=new_order_offer())
    finally:
        request_context.reset_request_id(token)

    assert created
    assert order.accept_due_at is not None
    assert order.accept_due_at <= timezone.now()
    assert order.request_id == "offer-request-1"  # the lane's accept carries it (log correlation)
    assert queued() == []  # no django-q2 task: the lane finds the offer in the table
    assert services.order_receive(offer=new_order_offer()) == (order, False)
    assert services.orders_claim_accept_due(limit=10) == [order.pk]
    assert services.orders_claim_accept_due(limit=10) == []  # claimed: another lane leaves it alone


def test_the_accept_call_carries_the_request_id_of_the_offer(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    token = request_context.set_request_id("offer-request-2")
    try:
        order = offered_order(aggregator)
    finally:
        request_context.reset_request_id(token)

    assert run_accepts() == [OrderStatus.ACCEPTED]
    accept = next(r for r, _ in aggregator.server.log if r.path.endswith(f"/orders/{order.order_id}/accept"))
    assert accept.headers["X-Request-ID"] == "offer-request-2"
    assert request_context.get_request_id() == "-"  # the lane thread's own id comes back


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


def test_an_order_goes_from_received_to_fulfilled_through_the_lane_and_nothing_is_left(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    order = offered_order(aggregator)

    # one pass: the accept (decide, reserve, accept call), the balance report, the payout's start (a
    # transfer due at once), then its send
    assert payout_lane.run_due_once() == 4

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert order.accept_due_at is None
    assert run_queued() == []  # nothing for django-q2: the lane delivers to the aggregator
    assert run_lane_until_idle() == 3  # fulfil pending and a balance report, then fulfil success

    order.refresh_from_db()
    assert order.status == OrderStatus.FULFILLED
    fulfils = [p["validationStatus"] for path, p in aggregator.calls if path.endswith("/fulfill")]
    assert fulfils == ["pending", "success"]
    assert SandboxPayout.objects.count() == 1
    assert not OutboxMessage.objects.exclude(status=OutboxStatus.DELIVERED).exists()
    assert payout_lane.run_due_once() == 0


def test_an_accept_makes_no_psp_call(unsynced: None, funded: None, aggregator: AggregatorFake) -> None:
    """Deciding and accepting make no PSP call (the payout threads do them), so an accept thread is never
    busy with a payout (the two pools: ``test_payout_lane_loop``)."""
    first = offered_order(aggregator)
    run_accepts()
    second, _ = services.order_receive(offer=new_order_offer("7f8a3c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"))
    aggregator.on(f"/v1/provider/orders/{second.order_id}/accept", 201, accept_data(second.order_id))

    assert run_accepts() == [OrderStatus.ACCEPTED]

    first.refresh_from_db()
    assert first.status == OrderStatus.ACCEPTED
    assert SandboxPayout.objects.count() == 0  # no payout was sent by an accept


def test_an_offer_advanced_again_after_it_is_accepted_changes_nothing(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    order = offered_order(aggregator)
    run_accepts()
    calls = len(aggregator.calls)

    assert workflow.order_advance(order_pk=order.pk) == OrderStatus.ACCEPTED
    # a django-q2 task queued before the upgrade, run after it
    assert tasks.order_process(order_pk=order.pk) == OrderStatus.ACCEPTED
    assert len(aggregator.calls) == calls


def test_an_accept_with_no_answer_is_due_again_at_once_then_settled_from_the_list_after_the_window(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    order, _ = services.order_receive(offer=new_order_offer())
    aggregator.on(f"/v1/provider/orders/{order.order_id}/accept", 503)

    for attempt in range(1, workflow.ACCEPT_ATTEMPTS + 1):
        assert run_accepts() == [OrderStatus.ACCEPTING]
        order.refresh_from_db()
        assert order.accept_attempts == attempt
    # attempts spent: the lane leaves it until the window has closed, then asks the order list
    assert order.accept_due_at == order.accept_deadline + services.ACCEPT_SETTLE_MARGIN
    assert run_accepts() == []

    listed = {**accept_data(order.order_id), "amount": "2.5", "rate": "1500", "status": "processing"}
    aggregator.on("/v1/provider/orders", 200, {"orders": [listed]}, method="GET")
    past = timezone.now() - timedelta(seconds=30)
    Order.objects.filter(pk=order.pk).update(accept_deadline=past, accept_due_at=timezone.now())

    assert run_accepts() == [OrderStatus.ACCEPTED]
    assert [p for p in aggregator.paths() if p.endswith("/accept")] == [
        f"/v1/provider/orders/{order.order_id}/accept"
    ] * workflow.ACCEPT_ATTEMPTS  # no accept call after the window


def test_a_settle_while_the_aggregator_is_away_is_asked_again_later(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    order, _ = services.order_receive(offer=new_order_offer())
    now = timezone.now()
    aggregator.on("/v1/provider/orders", 503, method="GET")
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.ACCEPTING, accept_deadline=now - timedelta(seconds=30)
    )

    assert run_accepts() == [OrderStatus.ACCEPTING]

    order.refresh_from_db()
    assert order.accept_due_at is not None
    assert order.accept_due_at >= now + workflow.SETTLE_RETRY
    assert run_accepts() == []


def test_under_the_staff_policy_an_offer_waits_for_staff_and_the_sweep_hands_it_back_when_that_ends(
    unsynced: None, funded: None, aggregator: AggregatorFake, settings: Any
) -> None:
    settings.PROVISION_MODE, settings.MANUAL_POLICY = "manual", "staff"
    order = offered_order(aggregator)

    assert run_accepts() == [OrderStatus.RECEIVED]
    order.refresh_from_db()
    assert order.accept_due_at is None  # the lane does not look at it again
    assert tasks.sweep()["made_due"] == 0
    assert run_accepts() == []

    settings.PROVISION_MODE = "auto"  # the provider switches to auto while the offer is still open
    assert tasks.sweep()["made_due"] == 1
    assert run_accepts() == [OrderStatus.ACCEPTED]


def test_when_the_aggregator_is_down_the_fulfil_stays_queued_and_the_payout_lane_sends_it_when_due(
    unsynced: None, funded: None, aggregator: AggregatorFake
) -> None:
    order = offered_order(aggregator, fulfil_status=503)
    payout_lane.run_due_once()
    payout_lane.run_due_once()

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    pending = OutboxMessage.objects.get(order=order, dedupe_key__endswith=":pending")
    assert (pending.status, pending.attempts) == (OutboxStatus.PENDING, 1)
    assert pending.next_attempt_at > timezone.now()  # backing off: the lane leaves it until then
    assert payout_lane.run_due_once() == 0

    aggregator.server.clear_all_handlers()  # the aggregator is back
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 200)
    aggregator.on("/v1/provider/balances", 200)
    OutboxMessage.objects.filter(pk=pending.pk).update(next_attempt_at=timezone.now())  # its time has come
    assert run_lane_until_idle() == 2  # fulfil pending, then success (behind it)

    order.refresh_from_db()
    assert order.status == OrderStatus.FULFILLED
    assert not OutboxMessage.objects.filter(order=order).exclude(status=OutboxStatus.DELIVERED).exists()


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


def test_a_delayed_balance_report_covers_the_changes_made_while_it_waits(
    unsynced: None, settings: Any
) -> None:
    settings.BALANCE_REPORT_DELAY = 5
    before = timezone.now()
    with transaction.atomic():
        first = services.outbox_enqueue_balance_report(currency="NGN")
    with transaction.atomic():
        second = services.outbox_enqueue_balance_report(currency="NGN")

    assert second.pk == first.pk  # one report for both changes
    assert first.next_attempt_at >= before + timedelta(seconds=5)
    assert queued() == []  # the payout lane sends it once due
    assert services.outbox_deliver_due(kind=OutboxKind.BALANCES) == 0  # not yet


def test_an_order_whose_pending_fulfil_fails_keeps_its_final_fulfil_untried_behind_it(
    unsynced: None, aggregator: AggregatorFake
) -> None:
    order = OrderFactory.create()
    with transaction.atomic():
        for status in ("pending", "success"):
            services.outbox_enqueue(
                kind=OutboxKind.FULFIL,
                dedupe_key=f"fulfil:{order.order_id}:{status}",
                path=f"orders/{order.order_id}/fulfill",
                payload={"psp": "sandbox", "txId": "SBX1", "validationStatus": status},
                order=order,
            )
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 503)

    claimed = services.outbox_claim_due(limit=10)
    for message_id in claimed:
        services.outbox_deliver_claimed(message_id=message_id)

    assert len(claimed) == 1
    assert services.outbox_claim_due(limit=10) == []
    pending, final = OutboxMessage.objects.filter(order=order).order_by("pk")
    assert [p["validationStatus"] for _, p in aggregator.calls] == ["pending"]
    assert (pending.attempts, pending.status) == (1, OutboxStatus.PENDING)
    assert pending.next_attempt_at > timezone.now()  # backing off
    assert (final.attempts, final.status) == (0, OutboxStatus.PENDING)  # never sent before the pending one


def test_delivery_tasks_queued_before_the_payout_lane_delivered_still_deliver(
    unsynced: None, aggregator: AggregatorFake
) -> None:
    """An upgraded node may still hold ``outbox:<order>`` tasks and ``outbox_retry`` schedules."""
    order = OrderFactory.create()
    with transaction.atomic():
        services.outbox_enqueue(
            kind=OutboxKind.FULFIL,
            dedupe_key=f"fulfil:{order.order_id}:pending",
            path=f"orders/{order.order_id}/fulfill",
            payload={"psp": "sandbox", "txId": "SBX1", "validationStatus": "pending"},
            order=order,
        )
    aggregator.on(f"/v1/provider/orders/{order.order_id}/fulfill", 200)

    assert tasks.outbox_deliver_order(order_pk=order.pk) == 1
    assert tasks.outbox_deliver_due() == 0
    assert OutboxMessage.objects.get(order=order).status == OutboxStatus.DELIVERED
