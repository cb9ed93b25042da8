"""A KES order to an M-Pesa wallet (institution SAFAKEPC) from ``/new_order`` to fulfil ``success`` with
everything real: gunicorn, the django-q2 worker, the payout lane, PostgreSQL, the project's aggregator
simulator, and the M-Pesa fake as a real HTTP server the node's processes reach over loopback. The fake
posts every query's result to the node's web process, as Daraja does: the payout lane's reads are
Transaction Status queries whose answers arrive only that way."""

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
from psp.models import DarajaRequest, DarajaRequestKind, DarajaToken, Transfer, TransferStatus
from psp.tests.conformance.fakes.mpesa import MpesaFake
from psp.tests.conformance.kit import Send, served

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def simulator() -> Iterator[Any]:
    with AggregatorSimulator(
        client_id=settings.AGGREGATOR_CLIENT_ID, secret=settings.AGGREGATOR_SECRET_KEY, tx_status_after=30
    ) as sim:
        yield sim


@pytest.fixture
def mpesa() -> Iterator[MpesaFake]:
    with served(MpesaFake) as fake:
        yield fake


def test_kes_mpesa_order_goes_from_new_order_to_fulfilled_success(
    simulator: Any, mpesa: MpesaFake, tmp_path: Path
) -> None:
    balance_services.balance_credit(currency="KES", amount=Decimal("1000000"), reason="e2e funds")
    mpesa.script_send(Send.SUCCEEDED)  # Daraja completes the payment; the node learns it by a status query
    env = node_env_for_tests(simulator.base_url, CURRENCIES="KES", PSP="mpesa", **mpesa.node_env())

    with run_node(env, tmp_path) as node:
        mpesa.deliver_to = node.url  # where the fake posts the Result callbacks (the URLs' paths are ours)
        simulator.node_url = node.url
        offered = simulator.offer(
            "1500",
            currency="KES",
            institution="SAFAKEPC",
            flavour="new_order",
            account_identifier="0708374149",
            account_name="John Doe",
        )
        done = simulator.wait_for_state(offered.id, "validated", timeout=120)

    assert (done.state, done.success_fulfils) == ("validated", 1)
    assert simulator.violations() == []
    order = Order.objects.get(order_id=offered.id)
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    (transfer,) = Transfer.objects.filter(order=order)
    assert (transfer.psp, transfer.status) == ("mpesa", TransferStatus.SUCCEEDED)
    (payout,) = mpesa.held()
    assert (payout.reference, payout.amount, payout.currency, payout.account) == (
        transfer.reference,
        Decimal("1500"),
        "KES",
        "254708374149",
    )
    # The txId is fixed when the payout is first reported pending: Daraja's acknowledgement carries no
    # receipt, so it is our OriginatorConversationID; the M-Pesa receipt is kept on the transfer.
    assert done.tx_ids == [order.psp_tx_id] == [transfer.reference]
    assert transfer.psp_transaction_id == payout.psp_id
    assert mpesa.posts() == 1
    # Success came from a Transaction Status answer the fake posted to the node's secret callback URL.
    assert DarajaRequest.objects.filter(
        kind=DarajaRequestKind.STATUS, reference=transfer.reference, answer="succeeded"
    ).exists()
    assert mpesa.deliveries
    assert all(status == 200 for _path, status in mpesa.deliveries)
    # One OAuth token for every process of the node (a second one would have invalidated the first).
    assert len(mpesa.tokens) == 1
    assert DarajaToken.objects.get().generation == 1
    assert balance_services.balance_verify() == []
