"""Locking querysets. Lock order everywhere: Order, then Transfer, then Balance."""

from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order, OutboxMessage, OutboxStatus
from provision.compiled import Lookup


def order_locked() -> QuerySet[Order]:
    return Order.objects.select_for_update(of=("self",)).order_by("pk")


def outbox_locked() -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.select_for_update(of=("self",), skip_locked=True).order_by("pk")


# The reads every order's path repeats, compiled once (provision.compiled).
_order_by_pk = Lookup(order_locked)
_pending_rows_by_order = Lookup(
    lambda: (
        OutboxMessage.objects.select_for_update(of=("self",))
        .filter(status=OutboxStatus.PENDING)
        .order_by("pk")
    ),
    field="order_id",
)


def lock_order(order_pk: int) -> Order:
    """``order_locked().get(pk=order_pk)``."""
    return _order_by_pk.get(order_pk)


def lock_pending_outbox_rows(order_pk: int) -> list[OutboxMessage]:
    """The order's pending outbox rows, oldest first, locked (waiting, never skipping)."""
    return _pending_rows_by_order.all(order_pk)
