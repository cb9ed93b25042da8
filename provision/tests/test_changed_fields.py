"""save() of a loaded order or transfer writes the columns that changed, and only those."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


def test_a_changed_field_is_written_with_updated_at_and_nothing_else() -> None:
    order = Order.objects.get(pk=OrderFactory.create().pk)
    order.memo = "Rent, November"

    with CaptureQueriesContext(connection) as queries:
        order.save()

    (sql,) = updates(queries)
    assert '"memo" = ' in sql
    assert '"updated_at" = ' in sql
    assert '"amount" = ' not in sql
    assert Order.objects.get(pk=order.pk).memo == "Rent, November"


def test_a_column_another_writer_changed_meanwhile_is_not_overwritten() -> None:
    order = Order.objects.get(pk=OrderFactory.create(account_name="Ada").pk)
    Order.objects.filter(pk=order.pk).update(account_name="Ada Obi")  # another transaction's write
    order.memo = "Rent"

    order.save()

    stored = Order.objects.get(pk=order.pk)
    assert (stored.memo, stored.account_name) == ("Rent", "Ada Obi")


def test_a_json_value_changed_in_place_is_saved() -> None:
    order = Order.objects.get(pk=OrderFactory.create(exclude_psps=[]).pk)
    order.exclude_psps.append("lenco")

    order.save()

    assert Order.objects.get(pk=order.pk).exclude_psps == ["lenco"]


def test_values_read_by_refresh_from_db_are_not_written_back() -> None:
    order = Order.objects.get(pk=OrderFactory.create().pk)
    Order.objects.filter(pk=order.pk).update(memo="from elsewhere")
    order.refresh_from_db(fields=["memo"])

    with CaptureQueriesContext(connection) as queries:
        order.save()

    (sql,) = updates(queries)
    assert '"memo" = ' not in sql


def test_an_order_made_in_python_is_saved_whole() -> None:
    order = OrderFactory.build()
    order.save()

    assert Order.objects.get(pk=order.pk).order_id == order.order_id
