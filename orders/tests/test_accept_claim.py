"""One accept attempt per order at a time, and no 404 applied over another attempt's 201.

The fork aggregator answers the first accept of an order 201 and every later one 404 (the order is no
longer open for accepting). Two runs of one order (a redelivered task and the sweep) must not both call
accept; and when a late 201 arrives after the order was settled as not ours, the order is ours again.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from balances import selectors as balance_selectors
from balances import services as balance_services
from orders import services
from orders.clients.aggregator import AcceptedOrder, AggregatorClient
from orders.models import Order, OrderStatus
from orders.tests.conftest import AggregatorFake, accept_data
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def accepting(funded: None) -> Order:
    order = OrderFactory.create(account_identifier="", account_name="", memo="")
    return services.order_decide(order_pk=order.pk)


def accept_path(order: Order) -> str:
    return f"/v1/provider/orders/{order.order_id}/accept"


def test_a_second_run_while_an_accept_is_in_flight_does_not_call_accept(
    aggregator: AggregatorFake, accepting: Order, monkeypatch: pytest.MonkeyPatch
) -> None:
    aggregator.on(accept_path(accepting), 201, accept_data(accepting.order_id), times=1)
    aggregator.on(accept_path(accepting), 404, times=1)
    real_accept = AggregatorClient.accept
    second_run: list[Order] = []

    def accept_while_another_run_starts(self: AggregatorClient, order_id: str) -> AcceptedOrder:
        answer = real_accept(self, order_id)  # 201: the aggregator has made the order ours
        if not second_run:  # the sweep (or a redelivered task) runs the same order before this one applies
            second_run.append(services.order_accept_with_aggregator(order_pk=accepting.pk))
        return answer

    monkeypatch.setattr(AggregatorClient, "accept", accept_while_another_run_starts)

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.ACCEPTED
    assert second_run[0].status == OrderStatus.ACCEPTING  # it found the claim and left the order alone
    assert aggregator.paths() == [accept_path(accepting)]
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("3750")


def test_a_run_after_an_attempt_that_died_without_an_answer_treats_its_404_as_unknown(
    aggregator: AggregatorFake, accepting: Order
) -> None:
    """The first attempt's process died after the aggregator answered 201; its claim ran out."""
    Order.objects.filter(pk=accepting.pk).update(
        accept_attempts=1, accept_claimed_until=timezone.now() - timedelta(seconds=1)
    )
    aggregator.on(accept_path(accepting), 404)
    listed = {**accept_data(accepting.order_id), "amount": "2.5", "rate": "1500", "status": "processing"}
    aggregator.on("/v1/provider/orders", 200, {"orders": [listed]}, method="GET")

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.ACCEPTED
    assert order.account_identifier == "0123456789"


def test_a_late_201_after_the_order_was_settled_as_not_ours_gives_it_back_with_a_cancel(
    accepting: Order,
) -> None:
    """An attempt outlived its claim: another one was refused (404), the list did not show the order,
    and then the first attempt's 201 arrives. The reservation is gone, so the node cancels the order and
    the aggregator reassigns it, instead of leaving it assigned to a node that will never pay it."""
    services.order_apply_accept_refused(order_pk=accepting.pk, reason="accept outcome unknown; not listed")
    accepted = AcceptedOrder(
        order_id=accepting.order_id,
        amount=Decimal("3750"),
        institution="ABNGNGLA",
        account_identifier="0123456789",
        account_name="Adébáyọ̀ Ọlá",
        memo="",
        metadata=None,
    )

    order = services.order_apply_accepted(order_pk=accepting.pk, accepted=accepted)

    assert order.status == OrderStatus.CANCELLED
    assert list(order.outbox.filter(kind="cancel").values_list("payload", flat=True)) == [
        {"reason": "Accepted after the provider had released the order"}
    ]
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")
    assert balance_services.balance_verify() == []
    assert not order.transfers.exists()


def test_the_sweep_calls_no_one_itself_and_makes_an_accept_nobody_will_take_due_for_the_lane(
    aggregator: AggregatorFake, accepting: Order
) -> None:
    from orders import tasks

    # A staff accept whose web request died after the call and before its answer was applied: no lane
    # holds the offer, and its window has closed.
    Order.objects.filter(pk=accepting.pk).update(
        accept_deadline=timezone.now() - timedelta(seconds=30), accept_due_at=None
    )

    assert tasks.sweep()["made_due"] == 1

    assert aggregator.calls == []
    assert services.orders_claim_accept_due(limit=10) == [accepting.pk]  # the lane settles it from the list
