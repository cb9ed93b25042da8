"""The node's own counters move with the work: transitions, declines, aggregator calls, webhooks."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from orders import services
from orders.tests.conftest import AggregatorFake, accept_data
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_transitions_and_declines_are_counted_after_commit(django_capture_on_commit_callbacks: Any) -> None:
    before = sample("provision_order_transitions_total", transition="decline", target="declined")
    declines_before = sample("provision_order_declines_total", reason="insufficient_balance")
    order = OrderFactory.create()

    with django_capture_on_commit_callbacks(execute=True):
        services.order_decide(order_pk=order.pk)

    assert sample("provision_order_transitions_total", transition="decline", target="declined") == before + 1
    assert sample("provision_order_declines_total", reason="insufficient_balance") == declines_before + 1


def test_aggregator_calls_are_timed_by_call_and_outcome(aggregator: AggregatorFake, funded: None) -> None:
    order = services.order_decide(order_pk=OrderFactory.create().pk)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/accept", 201, accept_data(order.order_id))
    before = sample("provision_aggregator_call_seconds_count", call="accept", outcome="ok")

    services.order_accept_with_aggregator(order_pk=order.pk)

    assert sample("provision_aggregator_call_seconds_count", call="accept", outcome="ok") == before + 1
