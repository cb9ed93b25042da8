"""Accepting with the aggregator: 201 stores the recipient, 404 means not ours, lost answers are looked up."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from werkzeug import Request, Response

from balances import selectors as balance_selectors
from balances.models import EntryKind, LedgerEntry
from orders import services
from orders.clients.aggregator import AggregatorUnavailable
from orders.models import OrderStatus
from orders.tests.conftest import AggregatorFake, accept_data
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def accepting(funded: None) -> Any:
    order = OrderFactory.create(account_identifier="", account_name="", memo="")
    return services.order_decide(order_pk=order.pk)


def test_201_stores_recipient_before_anything_else_and_accepts(
    aggregator: AggregatorFake, accepting: Any
) -> None:
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 201, accept_data(order_id))

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.ACCEPTED
    assert (order.account_identifier, order.account_name, order.memo) == (
        "0123456789",
        "Adébáyọ̀ Ọlá",
        "Payment <invoice #42> & co",
    )
    assert order.accept_amount == Decimal("3750")
    assert aggregator.calls[0][1] == {"timestamp": aggregator.calls[0][1]["timestamp"]}


def test_404_means_not_ours_releases_and_never_pays(aggregator: AggregatorFake, accepting: Any) -> None:
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 404)

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.LOST
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")
    assert list(LedgerEntry.objects.filter(order=order).values_list("kind", flat=True)) == [
        EntryKind.RESERVE,
        EntryKind.RELEASE,
    ]
    assert not order.transfers.exists()


def test_500_leaves_order_accepting_with_outcome_unknown(aggregator: AggregatorFake, accepting: Any) -> None:
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 500)

    with pytest.raises(AggregatorUnavailable):
        services.order_accept_with_aggregator(order_pk=accepting.pk)

    accepting.refresh_from_db()
    assert accepting.status == OrderStatus.ACCEPTING
    assert accepting.accept_outcome_unknown
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("3750")


def test_timeout_is_an_unknown_outcome(aggregator: AggregatorFake, accepting: Any, settings: Any) -> None:
    order_id = accepting.order_id

    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("{}", status=201)

    aggregator.server.expect_request(f"/v1/provider/orders/{order_id}/accept").respond_with_handler(slow)

    with pytest.raises(AggregatorUnavailable):
        services.order_accept_with_aggregator(order_pk=accepting.pk)

    accepting.refresh_from_db()
    assert accepting.accept_outcome_unknown


def test_lost_201_then_404_is_settled_from_the_order_list(aggregator: AggregatorFake, accepting: Any) -> None:
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 500, times=1)
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 404, times=1)
    # The list carries the token amount and the rate: 2.5 x 1500 = 3750, the offered fiat amount.
    listed = {**accept_data(order_id), "amount": "2.5", "rate": "1500", "status": "processing"}
    aggregator.on(
        "/v1/provider/orders", 200, {"total": 1, "page": 1, "pageSize": 100, "orders": [listed]}, method="GET"
    )

    with pytest.raises(AggregatorUnavailable):
        services.order_accept_with_aggregator(order_pk=accepting.pk)
    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.ACCEPTED
    assert order.account_identifier == "0123456789"
    assert order.accept_amount == Decimal("3750")
    list_call = next(payload for path, payload in aggregator.calls if path == "/v1/provider/orders")
    assert list_call["currency"] == "NGN"
    assert list_call["status"] == "processing"


def test_lost_201_then_404_and_absent_from_list_is_not_ours(
    aggregator: AggregatorFake, accepting: Any
) -> None:
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 500, times=1)
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 404, times=1)
    aggregator.on(
        "/v1/provider/orders", 200, {"total": 0, "page": 1, "pageSize": 100, "orders": None}, method="GET"
    )

    with pytest.raises(AggregatorUnavailable):
        services.order_accept_with_aggregator(order_pk=accepting.pk)
    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.LOST
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")


def test_after_the_window_the_list_decides_without_calling_accept(
    aggregator: AggregatorFake, accepting: Any
) -> None:
    type(accepting).objects.filter(pk=accepting.pk).update(
        accept_deadline=timezone.now() - timedelta(seconds=10)
    )
    aggregator.on(
        "/v1/provider/orders", 200, {"total": 0, "page": 1, "pageSize": 100, "orders": []}, method="GET"
    )

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.LOST
    assert aggregator.paths() == ["/v1/provider/orders"]


def test_manual_hold_policy_holds_the_payout_after_accepting(
    aggregator: AggregatorFake, accepting: Any, settings: Any
) -> None:
    settings.PROVISION_MODE = "manual"
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 201, accept_data(order_id))

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.HELD
    assert order.hold_until is not None
    assert 239 <= (order.hold_until - timezone.now()).total_seconds() <= 240


def test_amount_above_review_threshold_is_held_in_auto_mode(
    aggregator: AggregatorFake, accepting: Any, settings: Any
) -> None:
    settings.MANUAL_REVIEW_ABOVE = {"NGN": Decimal("1000")}
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 201, accept_data(order_id))

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.HELD


def test_recipient_on_the_review_list_is_held_in_auto_mode(
    aggregator: AggregatorFake, accepting: Any
) -> None:
    from orders.models import ReviewListEntry

    ReviewListEntry.objects.create(account_identifier="0123456789", reason="chargeback history")
    order_id = accepting.order_id
    aggregator.on(f"/v1/provider/orders/{order_id}/accept", 201, accept_data(order_id))

    order = services.order_accept_with_aggregator(order_pk=accepting.pk)

    assert order.status == OrderStatus.HELD
