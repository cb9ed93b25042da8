"""Reads of orders used by more than one caller."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from orders.models import Order, OrderStatus

_PENDING = {
    OrderStatus.ACCEPTING,
    OrderStatus.ACCEPTED,
    OrderStatus.HELD,
    OrderStatus.PAYING,
    OrderStatus.NEEDS_REVIEW,
}
_SUCCESS = {OrderStatus.PAID, OrderStatus.FULFILLED}
_NEVER_ACCEPTED = {OrderStatus.RECEIVED, OrderStatus.DECLINED, OrderStatus.EXPIRED}


def order_find(*, key: str) -> Order | None:
    """The order whose aggregator id (or, failing that, seed reference) is ``key``."""
    return Order.objects.filter(Q(order_id=key) | Q(reference=key)).order_by("pk").first()


def order_tx_status(*, order: Order) -> dict[str, Any] | None:
    """The ``data`` of /tx_status for this order; None when the node never accepted it (404).

    Never ``success`` unless paid. ``psp`` and ``txId`` are always strings (the fork's task panics on
    a missing one); ``error`` is a string whenever the status is ``failed``.
    """
    if order.status in _NEVER_ACCEPTED:
        return None
    data: dict[str, Any] = {"psp": order.psp or "", "txId": order.psp_tx_id or ""}
    if order.status in _SUCCESS:
        return {"status": "success", **data}
    if order.status in _PENDING:
        return {"status": "pending", **data}
    if order.status == OrderStatus.LOST:
        return {"status": "failed", **data, "error": "Order was not accepted by this provider"}
    return {"status": "failed", **data, "error": order.cancel_reason or "Order cancelled by provider"}
