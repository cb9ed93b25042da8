"""``provision.compiled.Lookup`` reads exactly what the ORM query it stands for reads, building its SQL
once: same statement, same values (decimals, datetimes, JSON), same errors, and rows that save only what
changed (``SavesChangedFields`` still sees them as loaded)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models.sql import compiler
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from balances.models import Balance
from orders import locks
from orders.models import Order, OrderStatus, OutboxMessage, OutboxStatus
from orders.tests.factories import OrderFactory
from provision.compiled import Lookup
from psp.models import Transfer

pytestmark = pytest.mark.django_db


def concrete_values(instance: Any) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def a_transfer() -> Transfer:
    order = OrderFactory.create(amount=Decimal("3750.25"), exclude_psps=["lenco"])
    return Transfer.objects.create(
        order=order,
        psp="sandbox",
        reference=f"pn-{order.pk}-1",
        amount=order.amount,
        currency=order.currency,
        fee=Decimal("12.50"),
        history=[{"event": "send", "amount": "3750.25"}],
    )


@transaction.atomic
def test_a_locked_read_returns_the_row_the_orm_returns() -> None:
    transfer = a_transfer()
    order_lookup = Lookup(locks.order_locked)
    transfer_lookup = Lookup(lambda: Transfer.objects.select_for_update())

    assert concrete_values(order_lookup.get(transfer.order_id)) == concrete_values(
        locks.order_locked().get(pk=transfer.order_id)
    )
    assert concrete_values(transfer_lookup.get(transfer.pk)) == concrete_values(
        Transfer.objects.select_for_update().get(pk=transfer.pk)
    )
    read = transfer_lookup.get(transfer.pk)
    assert (read.fee, read.history, read.order.exclude_psps) == (
        Decimal("12.50"),
        [{"event": "send", "amount": "3750.25"}],
        ["lenco"],
    )


@transaction.atomic
def test_it_sends_the_statement_the_orm_builds() -> None:
    order = OrderFactory.create()

    with CaptureQueriesContext(connection) as orm:
        list(locks.order_locked().filter(pk=order.pk)[:2])
    with CaptureQueriesContext(connection) as compiled:
        Lookup(locks.order_locked).get(order.pk)

    assert [q["sql"] for q in compiled.captured_queries] == [q["sql"] for q in orm.captured_queries]


@transaction.atomic
def test_the_sql_is_built_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    orders = OrderFactory.create_batch(3)
    built = []
    as_sql = compiler.SQLCompiler.as_sql

    def counting(self: compiler.SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        built.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(compiler.SQLCompiler, "as_sql", counting)
    lookup = Lookup(locks.order_locked)

    assert [lookup.get(order.pk).order_id for order in orders] == [order.order_id for order in orders]
    assert built == [Order]


@transaction.atomic
def test_a_missing_row_raises_does_not_exist_like_get() -> None:
    with pytest.raises(Order.DoesNotExist, match="Order matching query does not exist"):
        Lookup(locks.order_locked).get(987654)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_locking_read_outside_a_transaction_is_refused_like_the_orm() -> None:
    order = OrderFactory.create()
    lookup = Lookup(locks.order_locked)

    with transaction.atomic():
        lookup.get(order.pk)  # compiled inside a transaction; the check is made on every call
    with pytest.raises(TransactionManagementError):
        lookup.get(order.pk)
    with pytest.raises(TransactionManagementError):
        locks.order_locked().get(pk=order.pk)


@transaction.atomic
def test_all_keeps_the_querysets_filter_and_order() -> None:
    order, other = OrderFactory.create_batch(2)
    for key, status, owner in (
        ("a", OutboxStatus.PENDING, order),
        ("b", OutboxStatus.DELIVERED, order),
        ("c", OutboxStatus.PENDING, order),
        ("d", OutboxStatus.PENDING, other),
    ):
        OutboxMessage.objects.create(
            kind="fulfil", order=owner, dedupe_key=key, path="p", payload={}, status=status
        )

    assert [m.dedupe_key for m in locks.lock_pending_outbox_rows(order.pk)] == ["a", "c"]
    assert [m.dedupe_key for m in locks.lock_pending_outbox_rows(987654)] == []


@transaction.atomic
def test_a_row_it_read_saves_only_the_columns_that_changed() -> None:
    order = OrderFactory.create()
    read = locks.lock_order(order.pk)
    read.memo = "changed"

    with CaptureQueriesContext(connection) as saved:
        read.save()

    [update] = saved.captured_queries
    assignments = update["sql"].split(" WHERE ")[0]
    assert '"memo"' in assignments
    assert '"status"' not in assignments
    assert Order.objects.get(pk=order.pk).memo == "changed"


@transaction.atomic
def test_a_lookup_by_another_unique_field() -> None:
    Balance.objects.create(currency="KES", total=Decimal("10.00"))
    lookup = Lookup(lambda: Balance.objects.select_for_update(), field="currency")

    assert lookup.get("KES").total == Decimal("10.00")
    assert lookup.all("NGN") == []


def test_querysets_it_cannot_stand_for_are_refused() -> None:
    with pytest.raises(ValueError, match="plain model querysets"):
        Lookup(lambda: Transfer.objects.select_related("order")).get(1)
    with pytest.raises(ValueError, match="plain model querysets"):
        Lookup(lambda: Order.objects.filter(status=OrderStatus.RECEIVED)[:5]).get(1)


@transaction.atomic
def test_first_is_queryset_first() -> None:
    OrderFactory.create_batch(2, currency="KES")  # the model's own ordering picks one of them
    lookup = Lookup(lambda: Order.objects.all(), field="currency")

    with CaptureQueriesContext(connection) as orm:
        expected = Order.objects.filter(currency="KES").first()
    with CaptureQueriesContext(connection) as compiled:
        found = lookup.first("KES")

    assert found is not None
    assert found == expected
    assert [q["sql"] for q in compiled.captured_queries] == [q["sql"] for q in orm.captured_queries]
    assert lookup.first("GHS") is None
