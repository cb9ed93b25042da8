"""An order's automatic path, carried to its end in one worker task.

``order_advance`` looks at the order's state and takes the next step, again and again, until the order
waits for something outside this task (staff, the aggregator's answer after an outage, a PSP that has not
finished) or is final: decide and reserve, accept with the aggregator, start the payout, send it, and
then deliver the order's outbox rows (fulfil ``pending`` and the final fulfil).

Every step is the same service function a separate task, the sweep or an admin action calls, each in its
own transaction with the order locked and no lock held over HTTP; the loop only saves the queue round
trips between them (``provision.queue.kicks_deferred``: kicks a step would make to the next step are not
queued, the loop takes it now) and reads PSP health and institution codes once per task
(``psp.services.routing_memo``, forgotten when a PSP fails). Safety does not depend on the loop: every
step re-reads the locked order and does nothing when it has already been done, a task killed halfway is
delivered again by django-q2, and the minute sweep finishes what any lost task left behind.
"""

from __future__ import annotations

import logging

from django.conf import settings

from orders import outbox
from orders.models import Order, OrderStatus, OutboxKind
from provision import queue, scheduling
from psp.models import TransferStatus

logger = logging.getLogger(__name__)

MAX_STEPS = 8  # decide, accept, pay, send, and a failover round; a guard against a loop that never settles


def _step(order: Order, *, just_accepted: bool) -> Order | None:
    """Take the step the order's state calls for and return the order as it left it; None when there is
    no step this task can take now."""
    from orders import services, tasks
    from psp import tasks as psp_tasks

    if order.status == OrderStatus.RECEIVED:
        return services.order_decide(order_pk=order.pk)
    if order.status == OrderStatus.ACCEPTING:
        return tasks.order_accept(order_pk=order.pk, order=order)
    if order.status == OrderStatus.ACCEPTED:
        # Accepting just decided it needs no staff approval (or it would be held); otherwise ask again.
        if not just_accepted and services._needs_staff_approval(order):
            return None
        return tasks.order_start_payout_step(order_pk=order.pk)
    if order.status == OrderStatus.PAYING:
        transfer = (
            order.transfers.filter(status=TransferStatus.CREATED)
            .select_related("order")
            .order_by("-attempt")
            .first()
        )
        if transfer is None:
            return None  # sent and pending at the PSP: its check is scheduled
        psp_tasks.transfer_send(transfer_pk=transfer.pk, transfer=transfer)
        order.refresh_from_db(fields=["status"])  # what the PSP's answer made of it
        return order
    return None


def order_advance(*, order_pk: int) -> str:
    """Carry the order as far as it can go now; return its state at the end."""
    from orders import services
    from psp.services import routing_memo

    with queue.kicks_deferred(), routing_memo():
        # The first read is the decision itself (an order that is past it comes back as it is).
        order = services.order_decide(order_pk=order_pk)
        just_accepted = False
        for _ in range(MAX_STEPS):
            before = order.status
            after = _step(order, just_accepted=just_accepted)
            if after is None or after.status == before:
                break  # no progress (waiting for the aggregator, a PSP or staff), or nothing to do
            order, just_accepted = after, before == OrderStatus.ACCEPTING
        _deliver(order_pk)
    return Order.objects.values_list("status", flat=True).get(pk=order_pk)


def _deliver(order_pk: int) -> None:
    """Deliver what the order owes the aggregator now (and a balance report when they are not delayed,
    ``BALANCE_REPORT_DELAY``: a delayed one has its own run queued); retries are scheduled."""
    delivered = outbox.outbox_deliver_order(order_pk=order_pk)
    if not settings.BALANCE_REPORT_DELAY:
        outbox.outbox_deliver_due(kind=OutboxKind.BALANCES, limit=5)
    next_due = outbox.outbox_next_due_at(order_pk=order_pk) if delivered.left else None
    if next_due is not None:
        scheduling.run_at("orders.tasks.outbox_deliver_due", name="outbox_retry", when=next_due)
