"""A GHS bank order from /new_order to fulfil success through Paystack, with everything real: gunicorn, the
django-q2 worker, the payout lane, the project's aggregator simulator, PostgreSQL, and Paystack's fake as a
real HTTP server on loopback that the node's processes call (and whose signed webhook goes to gunicorn)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from balances import services as balance_services
from devtools.aggregator_sim import AggregatorSimulator
from devtools.processes import node_env_for_tests, run_node
from orders.models import Order, OrderStatus
from psp.models import InstitutionMapping, PspRecipient, Transfer
from psp.tests.conformance.fakes.paystack import PaystackFake
from psp.tests.conformance.kit import Status, served

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GCB = "GHCBGHAC"
ACCOUNT = "1441000123456"


@pytest.fixture
def simulator() -> Iterator[Any]:
    with AggregatorSimulator(
        client_id=settings.AGGREGATOR_CLIENT_ID, secret=settings.AGGREGATOR_SECRET_KEY, tx_status_after=30
    ) as sim:
        yield sim


@pytest.fixture
def paystack() -> Iterator[PaystackFake]:
    with served(PaystackFake) as fake:
        yield fake


def wait_for(condition: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_ghs_bank_order_goes_from_new_order_to_fulfil_success_through_paystack(
    simulator: Any, paystack: PaystackFake, tmp_path: Path
) -> None:
    InstitutionMapping.objects.create(
        psp="paystack", currency="GHS", institution=GCB, psp_code="ghipss:GH040100"
    )
    balance_services.balance_credit(currency="GHS", amount=Decimal("1000000"), reason="e2e funds")
    paystack.set_balance("GHS", Decimal("1000000"))
    env = node_env_for_tests(
        simulator.base_url,
        CURRENCIES="GHS",
        PSP="paystack",
        PAYSTACK_BASE_URL=paystack.base_url(),
        PAYSTACK_SECRET_KEY=paystack.secret_key,
        PAYSTACK_TIMEOUT_SECONDS="10",
    )

    with run_node(env, tmp_path) as node:
        simulator.node_url = node.url
        offered = simulator.offer("2500", currency="GHS", institution=GCB, account_identifier=ACCOUNT)
        wait_for(lambda: len(paystack.held()) == 1, timeout=90, what="the transfer to reach Paystack")
        (payout,) = paystack.held()
        paystack.finish(payout.reference, Status.SUCCEEDED)
        callback = paystack.callback(payout.reference)
        webhook = requests.post(
            node.url + callback.path,
            data=callback.body,
            headers={
                "x-paystack-signature": callback.headers["HTTP_X_PAYSTACK_SIGNATURE"],
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        done = simulator.wait_for_state(offered.id, "validated", timeout=90)

    assert webhook.status_code == 200
    assert (done.state, done.success_fulfils) == ("validated", 1)
    assert simulator.violations() == []
    order = Order.objects.get(order_id=offered.id)
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    (transfer,) = Transfer.objects.filter(order=order)
    assert (transfer.psp, transfer.reference, transfer.psp_transaction_id) == (
        "paystack",
        payout.reference,
        payout.psp_id,
    )
    assert done.tx_ids == [order.psp_tx_id] == [payout.psp_id]
    assert (payout.amount, payout.currency, payout.account) == (Decimal("2500.00"), "GHS", ACCOUNT)
    assert paystack.posts() == 1
    assert (
        PspRecipient.objects.filter(psp="paystack", kind="ghipss", institution_code="GH040100").count() == 1
    )
    assert balance_services.balance_verify() == []
