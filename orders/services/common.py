"""What every business action on an order shares: the lock, the refusals, and the steps that end an order
(cancel, report fulfil). The action modules import this; it imports none of them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from balances import services as balance_services
from orders.clients.aggregator import fulfil_payload
from orders.models import Order, OrderStatus, OutboxKind
from orders.services import outbox
from provision import runtime
from provision.errors import Conflict, NotFound

logger = logging.getLogger(__name__)


class OrderTermsConflict(Conflict):
    code = "order_conflict"


class OrderTransitionNotAllowed(Conflict):
    code = "transition_not_allowed"


class OrderNotFound(NotFound):
    code = "order_not_found"


class SecondApproverRequired(Conflict):
    code = "second_approver_required"


class HoldExpired(OrderTransitionNotAllowed):
    code = "hold_expired"


def order_lock(order_pk: int) -> Order:
    """The order, locked (``SELECT ... FOR UPDATE``) for the rest of the caller's transaction. Lock order
    everywhere: Order, then Transfer, then Balance. Raises OrderNotFound."""
    order = Order.objects.select_for_update(of=("self",)).filter(pk=order_pk).first()
    if order is None:
        raise OrderNotFound("No such order", order_pk=order_pk)
    return order


def refuse(order: Order, action: str) -> OrderTransitionNotAllowed:
    return OrderTransitionNotAllowed(
        f"Cannot {action} an order that is {order.get_status_display().lower()}",
        order_id=order.order_id,
        status=order.status,
    )


def limit_for(table: dict[str, Decimal], currency: str) -> Decimal | None:
    """A per-currency setting's value for ``currency`` (``*`` for every other currency)."""
    return table.get(currency, table.get("*"))


def report_fulfil(order: Order, *, validation_status: str, validation_error: str = "") -> None:
    """Enqueue fulfil ``pending`` (once) and, for a final status, the final fulfil after it. Caller holds
    the order's lock."""
    statuses = ["pending"] if validation_status == "pending" else ["pending", validation_status]
    for status in statuses:
        outbox.outbox_enqueue(
            kind=OutboxKind.FULFIL,
            dedupe_key=f"fulfil:{order.order_id}:{status}",
            path=f"orders/{order.order_id}/fulfill",
            payload=fulfil_payload(
                order.psp, order.psp_tx_id, status, validation_error if status == validation_status else ""
            ),
            order=order,
        )


def cancel_locked(order: Order, *, reason: str, now: datetime, actor: AbstractBaseUser | None) -> None:
    """Cancel an accepted, unpaid order: release its reservation, report the cancel. Caller holds the lock."""
    order.cancel(reason=reason, at=now, by=actor, description=reason[:255])
    order.save()
    balance_services.balance_release(order=order, reason=f"cancelled: {reason}", actor=actor)
    outbox.outbox_enqueue(
        kind=OutboxKind.CANCEL,
        dedupe_key=f"cancel:{order.order_id}",
        path=f"orders/{order.order_id}/cancel",
        payload={"reason": reason},
        order=order,
    )
    outbox.outbox_enqueue_balance_report(currency=order.currency)
    logger.info("order.cancelled", extra={"order_id": order.order_id, "reason": reason[:200]})


def order_check_payout_allowed(*, order: Order, actor: AbstractBaseUser | None) -> None:
    """Maker-checker: a staff "paid" above MAKER_CHECKER_ABOVE needs an approval by another user first.

    The one rule for every staff path that ends in ``paid``: pay via PSP, bank-file export and the
    pain.002 success lines that settle it (``orders.iso20022``), mark paid and resolve a review as paid.
    Each calls it on the locked order before it writes anything. The approval (``approved_by``) is
    recorded by ``order_approve_payout``. Automatic payouts (no actor) pass.
    Raises SecondApproverRequired.
    """
    threshold = limit_for(runtime.current().maker_checker_above, order.currency)
    if actor is None or threshold is None or order.amount <= threshold:
        return
    if order.approved_by_id is None:
        raise SecondApproverRequired(
            f"Payouts above {threshold} {order.currency} need an approval first, then a second user to pay",
            order_id=order.order_id,
        )
    if order.approved_by_id == actor.pk:
        raise SecondApproverRequired(
            "The user who approved this payout cannot also pay it: a second user must pay",
            order_id=order.order_id,
        )


def order_check_hold_open(*, order: Order, now: datetime) -> None:
    """Refuse to pay a held order past its approval deadline, whether or not the timeout has run yet.

    Called on the locked order by the paths that send money from the node (``order_start_payout``,
    ``orders.iso20022.bank_file_export``); ``order_expire_due`` cancels such an order under the same lock.
    Raises HoldExpired.
    """
    if order.hold_expired(now=now):
        raise HoldExpired(
            "The approval deadline of this held order has passed: it is cancelled, not paid",
            order_id=order.order_id,
            hold_until=order.hold_until.isoformat() if order.hold_until else None,
        )


def order_record_fulfil_reported_locked(*, order: Order, now: datetime | None = None) -> None:
    """paid -> fulfilled for an order whose row lock the caller holds; a repeat is logged, not an error."""
    if order.status != OrderStatus.PAID:
        logger.info(
            "order.fulfil_reported_repeat", extra={"order_id": order.order_id, "status": order.status}
        )
        return
    order.fulfil_reported(at=now or timezone.now(), description="Aggregator confirmed fulfil success")
    order.save()
