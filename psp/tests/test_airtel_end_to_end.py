"""A UGX order to an Airtel Uganda wallet (institution AIRTUGPC) from ``/new_order`` to fulfil ``success``
with everything real: gunicorn, the django-q2 worker, the payout lane, PostgreSQL, the project's aggregator
simulator, and the Airtel fake as a real HTTP server the node's processes reach over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from balances import services as balance_services
from devtools.aggregator_sim import AggregatorSimulator
from devtools.processes import node_env_for_tests, run_node
from orders.models import Order, OrderStatus
from psp.models import Transfer, TransferStatus
from psp.tests.conformance.fakes.airtel import AirtelFake
from psp.tests.conformance.kit import Send, served

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def simulator() -> Iterator[Any]:
    with AggregatorSimulator(
        client_id=settings.AGGREGATOR_CLIENT_ID, secret=settings.AGGREGATOR_SECRET_KEY, tx_status_after=30
    ) as sim:
        yield sim


@pytest.fixture
def airtel() -> Iterator[AirtelFake]:
    with served(AirtelFake) as fake:
        yield fake


def test_ugx_airtel_order_goes_from_new_order_to_fulfilled_success(
    simulator: Any, airtel: AirtelFake, tmp_path: Path
) -> None:
    balance_services.balance_credit(currency="UGX", amount=Decimal("1000000"), reason="e2e funds")
    airtel.script_send(Send.SUCCEEDED)
    env = node_env_for_tests(simulator.base_url, CURRENCIES="UGX", PSP="airtel", **airtel.node_env())

    with run_node(env, tmp_path) as node:
        simulator.node_url = node.url
        offered = simulator.offer(
            "15000",
            currency="UGX",
            institution="AIRTUGPC",
            flavour="new_order",
            account_identifier="+256752604392",
            account_name="Bob Mukasa",
        )
        done = simulator.wait_for_state(offered.id, "validated", timeout=120)

    assert (done.state, done.success_fulfils) == ("validated", 1)
    assert simulator.violations() == []
    order = Order.objects.get(order_id=offered.id)
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    (transfer,) = Transfer.objects.filter(order=order)
    assert (transfer.psp, transfer.status) == ("airtel", TransferStatus.SUCCEEDED)
    (payout,) = airtel.held()
    assert (payout.reference, payout.amount, payout.currency, payout.account) == (
        transfer.reference,
        Decimal("15000"),
        "UGX",
        "752604392",
    )
    assert done.tx_ids == [order.psp_tx_id] == [payout.psp_id]
    assert airtel.posts() == 1
    assert airtel.problems == []
    assert balance_services.balance_verify() == []
