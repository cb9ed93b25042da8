"""django-q2 jobs (the accept lane): each loads by id and calls one workflow or service function; each is
safe to run twice. PSP calls and outbox deliveries never run here: they are the payout lane's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_q.models import Success

from orders import services, workflow
from orders.models import Order, OrderStatus
from provision import queue, runtime
from provision.models import UsedSignature

logger = logging.getLogger(__name__)

# A received order whose task should have run by now (queued and not picked up, or lost with a worker).
RECEIVED_LATE_AFTER = timedelta(seconds=10)
TASK_RESULTS_MAX_AGE = timedelta(days=1)


def order_process(*, order_pk: int) -> str:
    return workflow.order_advance(order_pk=order_pk)


def order_accept(*, order_pk: int) -> str:
    return workflow.order_accept(order_pk=order_pk).status


def order_accept_settle(*, order_pk: int) -> str:
    return workflow.order_accept_settle(order_pk=order_pk)


def outbox_deliver_due() -> int:
    """Deliver every due row. The payout lane delivers the outbox; this and ``outbox_deliver_order`` stay
    for the tasks and one-off schedules (``outbox_retry``) queued before it did, so they do not fail."""
    return services.outbox_deliver_due()


def outbox_deliver_order(*, order_pk: int) -> int:
    return services.outbox_deliver_due()


@dataclass(frozen=True)
class DueTask:
    func: str
    name: str
    kwargs: dict[str, Any]


def due_work(*, now: datetime, received_late_after: timedelta = RECEIVED_LATE_AFTER) -> list[DueTask]:
    """The accept-lane tasks a lost task or a crash may have left undone: late received orders and accepts
    past their window. (The payout lane finds its own due work, the outbox included, in the database.)"""
    work: list[DueTask] = []
    if not runtime.current().staff_policy:
        received = Order.objects.filter(
            status=OrderStatus.RECEIVED, accept_deadline__gt=now, received_at__lte=now - received_late_after
        )
        for pk in received.values_list("pk", flat=True)[:100]:
            work.append(DueTask("orders.tasks.order_process", f"sweep:order_process:{pk}", {"order_pk": pk}))
    settle_before = now - services.ACCEPT_SETTLE_MARGIN
    accepting = Order.objects.filter(status=OrderStatus.ACCEPTING, accept_deadline__lt=settle_before)
    for pk in accepting.values_list("pk", flat=True)[:100]:
        work.append(
            DueTask("orders.tasks.order_accept_settle", f"sweep:accept_settle:{pk}", {"order_pk": pk})
        )
    return work


def sweep() -> dict[str, int]:
    """The safety net, every minute: expire what is overdue and queue whatever a lost task or a crash left
    behind. It calls no aggregator or PSP itself, so an outage cannot stall it; every task it queues is
    safe beside a run already queued (accepts are claimed per order, deliveries leased per row)."""
    now = timezone.now()
    counts = {"expired": services.order_expire_due(now=now), "queued": 0}
    for task in due_work(now=now):
        queue.enqueue(task.func, task_name=task.name, **task.kwargs)
        counts["queued"] += 1
    return counts


def purge_used_signatures() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.HMAC_TIMESTAMP_AGE + settings.HMAC_FUTURE_SKEW + 60)
    deleted, _ = UsedSignature.objects.filter(seen_at__lt=cutoff).delete()
    return deleted


def purge_task_results() -> int:
    """Delete successful task results older than a day (the worker heartbeat only needs the newest)."""
    deleted, _ = Success.objects.filter(stopped__lt=timezone.now() - TASK_RESULTS_MAX_AGE).delete()
    return deleted
