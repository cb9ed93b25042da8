"""Reads of orders used by more than one caller."""

from __future__ import annotations

from typing import Any

from orders.models import Flavour, Order, OrderStatus
from provision.errors import Conflict

_PENDING = {
    OrderStatus.ACCEPTING,
    OrderStatus.ACCEPTED,
    OrderStatus.HELD,
    OrderStatus.PAYING,
    OrderStatus.NEEDS_REVIEW,
}
_SUCCESS = {OrderStatus.PAID, OrderStatus.FULFILLED}
_NEVER_ACCEPTED = {OrderStatus.RECEIVED, OrderStatus.DECLINED, OrderStatus.EXPIRED}


class OrderReferenceAmbiguous(Conflict):
    """More than one seed-flavour order carries the reference asked about: answering for any one of them
    could report another order's payout."""

    code = "ambiguous_reference"


def order_find(*, order_id: str = "", reference: str = "") -> Order | None:
    """The order a /tx_status question is about; None when there is none.

    ``order_id`` (the fork's ``orderId``) is decisive when given: only the order with exactly that id
    answers. ``reference`` (the key upstream sends, carrying the aggregator's order id as well) answers
    with the order of exactly that id, else with the one seed-flavour order whose seed reference it is.
    Raises OrderReferenceAmbiguous when several seed orders share that reference.
    """
    if order_id:
        return Order.objects.filter(order_id=order_id).first()
    if not reference:
        return None
    order = Order.objects.filter(order_id=reference).first()
    if order is not None:
        return order
    seed_orders = list(Order.objects.filter(flavour=Flavour.SEED, reference=reference).order_by("pk")[:2])
    if len(seed_orders) > 1:
        raise OrderReferenceAmbiguous(
            "More than one order has this reference; ask by orderId",
            errors={"reference": ["More than one order has this reference."]},
            reference=reference,
        )
    return seed_orders[0] if seed_orders else None


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
    if order.status == OrderStatus.REVERSED:
        return {"status": "failed", **data, "error": "Payout reversed by the payment provider"}
    if order.status == OrderStatus.LOST:
        return {"status": "failed", **data, "error": "Order was not accepted by this provider"}
    return {"status": "failed", **data, "error": order.cancel_reason or "Order cancelled by provider"}
