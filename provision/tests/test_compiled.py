"""``provision.compiled.Lookup`` reads exactly what the ORM query it stands for reads, building its SQL
once: same statement, same values (decimals, datetimes, JSON), same errors, and rows that save only what
changed (``SavesChangedFields`` still sees them as loaded). ``PreparedInsert`` writes exactly the row the
ORM's insert writes, with the statement built once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Model, Value
from django.db.models.signals import post_save
from django.db.models.sql import compiler
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from balances.models import Balance
from orders import locks
from orders.models import Order, OrderStatus, OutboxMessage, OutboxStatus
from orders.tests.factories import OrderFactory
from provision import compiled as compiled_module
from provision.compiled import Lookup, PreparedInsert
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


# --- PreparedInsert ------------------------------------------------------------------------------------


def an_order(order_id: str, **fields: Any) -> Order:
    return Order(
        order_id=order_id,
        amount=Decimal("736.155"),
        currency="NGN",
        institution="ABNGNGLA",
        exclude_psps=["lenco"],
        account_name="Adébáyọ̀ Ọlá",
        accept_deadline=datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC),
        **fields,
    )


def stored(order: Order) -> dict[str, Any]:
    values = concrete_values(Order.objects.get(pk=order.pk))
    for volatile in ("id", "received_at", "created_at", "updated_at"):
        values.pop(volatile)
    return values


class Statements:
    """The SQL and parameters sent to the database, as the backend receives them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.sent.append((sql, list(params or ())))
        return execute(sql, params, many, context)


@transaction.atomic
def test_a_new_row_is_written_with_the_statement_and_values_of_the_orms_insert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepared, ours = an_order("same-id", memo="ours"), Statements()
    with connection.execute_wrapper(ours):
        prepared.save()
    Order.objects.filter(pk=prepared.pk).update(order_id="moved")
    monkeypatch.setattr(PreparedInsert, "_do_insert", Model.__dict__["_do_insert"])  # Django's own insert
    plain, orms = an_order("same-id", memo="ours"), Statements()
    with connection.execute_wrapper(orms):
        plain.save()

    ((our_sql, our_params),) = ours.sent
    ((orm_sql, orm_params),) = orms.sent
    assert our_sql == orm_sql
    times = ("received_at", "created_at", "updated_at")  # the clock moved between the two saves
    columns = [f.attname for f in Order._meta.concrete_fields if f.attname != "id"]
    # repr: PostgreSQL's JSON parameters are adapter objects that do not compare equal to each other
    same = [(c, repr(o)) for c, o in zip(columns, our_params, strict=True) if c not in times]
    assert same == [(c, repr(o)) for c, o in zip(columns, orm_params, strict=True) if c not in times]
    assert {**stored(prepared), "order_id": "same-id"} == stored(plain)
    assert isinstance(prepared.pk, int)
    assert prepared.pk == plain.pk - 1
    assert prepared.created_at is not None  # auto_now_add ran
    assert prepared.created_at <= plain.created_at


@transaction.atomic
def test_the_insert_statement_is_built_once_per_model_and_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled_module._inserts.clear()
    built = []
    compile_insert = compiled_module._compile_insert

    def counting(model: Any, *args: Any) -> Any:
        built.append(model)
        return compile_insert(model, *args)

    monkeypatch.setattr(compiled_module, "_compile_insert", counting)

    for number in range(3):
        an_order(f"once-{number}").save()

    assert built == [Order]
    assert Order.objects.filter(order_id__startswith="once-").count() == 3


@transaction.atomic
def test_saving_still_sends_the_model_signals_and_checks_constraints() -> None:
    saved = []

    def receiver(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
        saved.append((instance.order_id, created, instance.pk is not None))

    post_save.connect(receiver, sender=Order)
    try:
        an_order("signals-1").save()
    finally:
        post_save.disconnect(receiver, sender=Order)

    assert saved == [("signals-1", True, True)]
    with pytest.raises(IntegrityError), transaction.atomic():
        an_order("signals-1").save()


@transaction.atomic
def test_rows_the_orm_builds_differently_are_left_to_it() -> None:
    with_expression = an_order("expression-1", memo=Value("set by the database"))
    with_expression.save()
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    fixture_row = an_order("fixture-1", memo="loaded", created_at=now, updated_at=now)
    fixture_row.save_base(raw=True)  # how loaddata saves

    assert Order.objects.get(order_id="expression-1").memo == "set by the database"
    assert Order.objects.get(order_id="fixture-1").memo == "loaded"
