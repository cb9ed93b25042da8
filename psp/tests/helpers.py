"""Shared arrange helpers of the PSP tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.test import TestCase

from balances import services as balance_services
from orders import payout_lane
from orders import services as order_services
from orders.models import Order, OrderStatus, OutboxMessage
from orders.tests.factories import OrderFactory
from psp.models import Transfer, TransferStatus

FIXTURES = Path(__file__).parent / "fixtures"
LENCO_API_KEY = "lenco-test-token"
LENCO_ACCOUNT_ID = "6f2c3a9e-1b7d-4c55-9e0a-3d8b2f41c7aa"
ORDER_KEY = "559028af-6e15-4b21-bab5-052a248db249"  # the order of the Lenco fixtures
LENCO_REF_1 = "pn-559028af6e154b21bab5052a248db249-1"
SANDBOX_REF_1 = "pn-559028af6e154b21bab5052a248db249-1"  # the sandbox derives references the same way
SANDBOX_REF_2 = "pn-559028af6e154b21bab5052a248db249-2"
JSON = "application/json"


def fixture(psp: str, name: str) -> bytes:
    return (FIXTURES / psp / name).read_bytes()


def lenco_error(*, message: str, code: str) -> str:
    return json.dumps({"status": False, "message": message, "data": [], "errorCode": code})


def accepted_order(
    *, order_id: str = ORDER_KEY, amount: str = "15000", funds: str = "100000", **fields: Any
) -> Order:
    """An order the aggregator accepted, its amount reserved, ready for ``payout_start``."""
    order = OrderFactory.create(order_id=order_id, amount=Decimal(amount), **fields)
    balance_services.balance_credit(currency=order.currency, amount=Decimal(funds), reason="funds")
    order_services.order_decide(order_pk=order.pk)
    order.refresh_from_db()
    assert order.status == OrderStatus.ACCEPTING, order.status
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.ACCEPTED)  # as if the aggregator said 201
    order.refresh_from_db()
    return order


def transfers_of(order: Order) -> list[tuple[str, int, str, str]]:
    return [
        (t.psp, t.attempt, t.reference, t.status)
        for t in Transfer.objects.filter(order=order).order_by("attempt")
    ]


def fulfil_statuses(order: Order) -> list[str]:
    return [
        m.payload["validationStatus"]
        for m in OutboxMessage.objects.filter(order=order, kind="fulfil").order_by("pk")
    ]


def paying_transfer(
    *, psp: str, reference: str, order_id: str = ORDER_KEY, amount: str = "15000"
) -> Transfer:
    """An order in ``paying`` with its amount reserved, and its transfer pending at ``psp``."""
    order = OrderFactory.create(order_id=order_id, amount=Decimal(amount))
    balance_services.balance_credit(currency=order.currency, amount=Decimal("100000"), reason="funds")
    with transaction.atomic():
        balance_services.balance_reserve(order=order_services.order_lock(order.pk))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAYING, psp=psp)
    return Transfer.objects.create(
        order=order,
        psp=psp,
        reference=reference,
        amount=order.amount,
        currency=order.currency,
        status=TransferStatus.PENDING,
        sends=1,
    )


def run_lane(rounds: int = 5) -> int:
    """What the payout lane does with the work due now (tests run no lane process), pass after pass until
    a pass finds nothing: a start, then its send, then a failover's next start and send. Items run."""
    ran = 0
    for _ in range(rounds):
        # The lane's transactions commit: run what they hooked on commit (the sandbox's webhooks).
        with TestCase.captureOnCommitCallbacks(execute=True):
            done = payout_lane.run_due_once()
        if not done:
            break
        ran += done
    return ran
