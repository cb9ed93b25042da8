"""Locking querysets. Lock order everywhere: Order, then Transfer, then Balance."""

from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order, OutboxMessage, OutboxStatus


def order_locked() -> QuerySet[Order]:
    return Order.objects.select_for_update(of=("self",)).order_by("pk")


def outbox_locked() -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.select_for_update(of=("self",), skip_locked=True).order_by("pk")


def lock_order(order_pk: int) -> Order:
    return order_locked().get(pk=order_pk)


def lock_pending_outbox_rows(order_pk: int) -> list[OutboxMessage]:
    """The order's pending outbox rows, oldest first, locked (waiting, never skipping)."""
    return list(
        OutboxMessage.objects.select_for_update(of=("self",))
        .filter(order_id=order_pk, status=OutboxStatus.PENDING)
        .order_by("pk")
    )
