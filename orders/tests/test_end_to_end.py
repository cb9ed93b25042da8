"""From assignment to fulfilled with everything real: gunicorn, the django-q2 worker, the sandbox PSP,
the project's aggregator simulator, PostgreSQL. Sync mode is not enough here: the kicks go through the
ORM broker to a separate worker process."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from balances import services as balance_services
from devtools.aggregator_sim import AggregatorSimulator
from devtools.processes import node_env_for_tests, run_node
from orders.models import Order, OrderStatus
from psp.models import SandboxPayout, Transfer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def simulator() -> Any:
    with AggregatorSimulator(
        client_id=settings.AGGREGATOR_CLIENT_ID, secret=settings.AGGREGATOR_SECRET_KEY, tx_status_after=30
    ) as sim:
        yield sim


def test_orders_in_both_flavours_go_from_offer_to_validated_once(simulator: Any, tmp_path: Path) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("1000000"), reason="e2e funds")

    with run_node(node_env_for_tests(simulator.base_url), tmp_path) as node:
        simulator.node_url = node.url
        offered = [
            simulator.offer("5000", currency="NGN", institution="ABNGNGLA", flavour="new_order"),
            simulator.offer("736.155", currency="NGN", institution="ABNGNGLA", flavour="seed"),
        ]
        done = [simulator.wait_for_state(o.id, "validated", timeout=60) for o in offered]

    assert [o.state for o in done] == ["validated", "validated"]
    assert [o.success_fulfils for o in done] == [1, 1]
    assert simulator.violations() == []
    for sim_order in done:
        order = Order.objects.get(order_id=sim_order.id)
        assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
        assert Transfer.objects.filter(order=order).count() == 1
        assert sim_order.tx_ids == [order.psp_tx_id]
    assert SandboxPayout.objects.count() == 2
    assert balance_services.balance_verify() == []
