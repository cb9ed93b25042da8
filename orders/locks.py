"""Locking querysets. Lock order everywhere: Order, then Transfer, then Balance."""

from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order, OutboxMessage


def order_locked() -> QuerySet[Order]:
    return Order.objects.select_for_update(of=("self",)).order_by("pk")


def outbox_locked() -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.select_for_update(of=("self",), skip_locked=True).order_by("pk")


def outbox_rows_of_order(order_pk: int) -> QuerySet[OutboxMessage]:
    """One order's outbox rows, oldest first, locked (waiting for a concurrent claim, never skipping)."""
    return OutboxMessage.objects.select_for_update(of=("self",)).filter(order_id=order_pk).order_by("pk")
