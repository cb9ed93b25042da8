"""An order's automatic path, carried to its end in one worker task.

``order_advance`` looks at the order's state and takes the next step, again and again, until the order
waits for something outside this task (staff, the aggregator's answer after an outage, a PSP that has not
finished) or is final: decide and reserve, accept with the aggregator, start the payout, send it, and
then deliver the order's outbox rows (fulfil ``pending`` and the final fulfil) and any due balance report.

Every step is the same service function a separate task, the sweep or an admin action calls, each in its
own transaction with the order locked and no lock held over HTTP; the loop only saves the queue round
trips between them (``provision.queue.kicks_deferred``: kicks a step would make to the next step are not
queued, the loop takes it now). Safety does not depend on the loop: every step re-reads the locked order
and does nothing when it has already been done, a task killed halfway is delivered again by django-q2,
and the minute sweep finishes what any lost task left behind.
"""

from __future__ import annotations

import logging

from orders import outbox
from orders.models import Order, OrderStatus, OutboxKind
from provision import queue, scheduling
from psp.models import TransferStatus

logger = logging.getLogger(__name__)

MAX_STEPS = 8  # decide, accept, pay, send, and a failover round; a guard against a loop that never settles


def _step(order: Order) -> bool:
    """Take the step the order's state calls for; False when there is none this task can take now."""
    from orders import services, tasks
    from psp import tasks as psp_tasks

    if order.status == OrderStatus.RECEIVED:
        services.order_decide(order_pk=order.pk)
    elif order.status == OrderStatus.ACCEPTING:
        tasks.order_accept(order_pk=order.pk)
    elif order.status == OrderStatus.ACCEPTED:
        if services._needs_staff_approval(order):
            return False
        tasks.order_start_payout(order_pk=order.pk)
    elif order.status == OrderStatus.PAYING:
        transfer_pk = (
            order.transfers.filter(status=TransferStatus.CREATED)
            .order_by("-attempt")
            .values_list("pk", flat=True)
        ).first()
        if transfer_pk is None:
            return False  # sent and pending at the PSP: its check is scheduled
        psp_tasks.transfer_send(transfer_pk=transfer_pk)
    else:
        return False
    return True


def order_advance(*, order_pk: int) -> str:
    """Carry the order as far as it can go now; return its state at the end."""
    status = ""
    with queue.kicks_deferred():
        for _ in range(MAX_STEPS):
            order = Order.objects.get(pk=order_pk)
            if order.status == status or not _step(order):
                break  # no progress (waiting for the aggregator, a PSP or staff), or nothing to do
            status = order.status
        _deliver(order_pk)
    return Order.objects.values_list("status", flat=True).get(pk=order_pk)


def _deliver(order_pk: int) -> None:
    """Deliver what the order owes the aggregator now, then any due balance report; retries are scheduled."""
    outbox.outbox_deliver_due(order_pk=order_pk)
    outbox.outbox_deliver_due(kind=OutboxKind.BALANCES, limit=5)
    next_due = outbox.outbox_next_due_at(order_pk=order_pk)
    if next_due is not None:
        scheduling.run_at("orders.tasks.outbox_deliver_due", name="outbox_retry", when=next_due)
