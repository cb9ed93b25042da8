"""Races on PostgreSQL (SQLite ignores row locks): real threads, real transactions."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest

from balances import selectors as balance_selectors
from balances import services as balance_services
from balances.models import EntryKind, LedgerEntry
from orders import services, workflow
from orders import services as order_services
from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from provision.testing import run_together
from psp.models import SandboxPayout, Transfer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_accepts_never_oversell_the_balance() -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    orders = [OrderFactory.create(amount=Decimal("20000")) for _ in range(10)]

    run_together([partial(services.order_decide, order_pk=o.pk) for o in orders])

    statuses = sorted(Order.objects.values_list("status", flat=True))
    assert statuses.count(OrderStatus.ACCEPTING) == 5
    assert statuses.count(OrderStatus.DECLINED) == 5
    balance = balance_selectors.balance_get(currency="NGN")
    assert (balance.reserved, balance.available) == (Decimal("100000"), Decimal("0"))
    assert balance_services.balance_verify() == []


def _accepted_order() -> Order:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    order = OrderFactory.create()
    services.order_decide(order_pk=order.pk)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.ACCEPTED)
    return order


def test_two_workers_starting_the_same_payout_make_one_transfer() -> None:
    order = _accepted_order()

    results = run_together([lambda: order_services.order_start_payout(order_pk=order.pk) for _ in range(4)])

    assert sum(isinstance(r, Order) for r in results) == 1
    assert all(isinstance(r, Order | services.OrderTransitionNotAllowed) for r in results)
    assert Transfer.objects.filter(order=order).count() == 1


def test_mark_paid_racing_the_approval_timeout_gives_one_outcome() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from orders.models import OutboxMessage

    order = _accepted_order()
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.HELD, hold_until=timezone.now() - timedelta(seconds=1)
    )

    marked, _expired = run_together(
        [
            partial(services.order_mark_paid, order_pk=order.pk, external_reference="BANK-9", actor=None),
            services.order_expire_due,
        ]
    )

    order.refresh_from_db()
    cancels = OutboxMessage.objects.filter(order=order, kind="cancel").count()
    kinds = sorted(LedgerEntry.objects.filter(order=order).values_list("kind", flat=True))
    if isinstance(marked, Order):
        assert (order.status, cancels, kinds) == (OrderStatus.PAID, 0, ["DEBIT", "RESERVE"])
    else:
        assert isinstance(marked, services.OrderTransitionNotAllowed)
        assert (order.status, cancels, kinds) == (OrderStatus.CANCELLED, 1, ["RELEASE", "RESERVE"])
    assert balance_services.balance_verify() == []


def test_two_workers_sending_the_same_transfer_pay_once() -> None:
    order = _accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    transfer = Transfer.objects.get(order=order)

    run_together([lambda: workflow.payout_step(transfer_pk=transfer.pk) for _ in range(4)])

    transfer.refresh_from_db()
    order.refresh_from_db()
    assert SandboxPayout.objects.count() == 1
    assert transfer.sends == 1
    assert order.status == OrderStatus.PAID
    assert LedgerEntry.objects.filter(order=order, kind=EntryKind.DEBIT).count() == 1


def test_service_locks_the_order_row_before_it_writes() -> None:
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    order = _accepted_order()

    with CaptureQueriesContext(conn) as queries:
        services.order_cancel(order_pk=order.pk, reason="ops", actor=None)

    sql = [q["sql"] for q in queries.captured_queries]
    lock = next(i for i, s in enumerate(sql) if "FOR UPDATE" in s and '"orders_order"' in s)
    first_write = next(i for i, s in enumerate(sql) if s.startswith(("UPDATE", "INSERT")))
    assert lock < first_write
