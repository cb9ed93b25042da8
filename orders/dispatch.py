"""Received orders are the worker's queue: the dispatcher turns them into ``order_process`` tasks.

``/new_order`` stores the order with one INSERT and nothing else, so an offer costs the aggregator's
connection as little as the node can make it. The worker side finds what arrived: django-q2's pusher
asks its broker for work every ``poll`` (0.2 s) when idle and continuously when busy, and this
project's broker (``orders.broker.OrderQueueBroker``) first calls ``claim_received``, at most every
``DISPATCH_INTERVAL`` seconds. One transaction claims up to ``CLAIM_LIMIT`` received orders that have no
task yet (oldest first; ``SKIP LOCKED`` on PostgreSQL, so two clusters never claim the same order), marks
them queued and writes their tasks to the broker's queue table with one INSERT, already locked for this
cluster as django-q2's own dequeue would leave them, and the broker hands them to the cluster at once
(no SELECT and UPDATE per task to read them back). From then on each is an ordinary django-q2 task:
acknowledged (deleted) when done, taken again by any cluster once its lock (``retry``, 90 s) has passed
if the worker died with it. An order is queued once, or with its claim not at all; the minute sweep still
processes any received order left behind. ``dispatch_received`` queues without claiming (tests, tools).

Each task carries the offer's request id, so an order's log lines from ``/new_order`` to its fulfil
share one ``request_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderStatus
from provision import queue

DISPATCH_INTERVAL = 0.05  # seconds between two looks at the orders table while the queue is busy
DISPATCH_LIMIT = 200
# Tasks the broker claims for its own cluster per look: about what its workers take in before the next
# look, so a second cluster on the same database finds the rest unclaimed.
CLAIM_LIMIT = 10
# An order's task keeps no success row in django-q2's result table: the order's own state and transition
# log say what it did, and a row per order would cost the cluster's monitor a SELECT and an INSERT (with
# the pickled result) for each. Failures are still stored; the worker heartbeat (provision.health) comes
# from the minute sweep's rows.
ORDER_TASK_OPTIONS: dict[str, Any] = {"save": False}


def dispatch_received(*, limit: int = DISPATCH_LIMIT) -> int:
    """Queue an ``order_process`` task for each received order that has none yet; return how many."""
    queued, _ = _dispatch(limit=limit, claimed_until=None)
    return queued


def claim_received(*, until: datetime, limit: int = DISPATCH_LIMIT) -> list[tuple[int, str]]:
    """What the cluster's broker calls: like ``dispatch_received``, but the tasks are written already
    claimed by this cluster until ``until`` and returned as the broker's ``(id, payload)`` pairs, so the
    cluster runs them without reading them back from the queue table (a SELECT and an UPDATE per task).
    Left unfinished (the cluster died), they are taken again once ``until`` has passed, as any task."""
    _, claimed = _dispatch(limit=limit, claimed_until=until)
    return claimed


def _dispatch(*, limit: int, claimed_until: datetime | None) -> tuple[int, list[tuple[int, str]]]:
    """How many orders were queued, and the tasks claimed for the caller (see ``insert_tasks``)."""
    with transaction.atomic():
        waiting = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(status=OrderStatus.RECEIVED, queued_at__isnull=True)
            .order_by("pk")
            .values_list("pk", "request_id")[:limit]
        )
        if not waiting:
            return 0, []
        Order.objects.filter(pk__in=[pk for pk, _ in waiting]).update(queued_at=timezone.now())
        tasks = [
            queue.Task(
                func="orders.tasks.order_process",
                name=f"order_process:{pk}",
                kwargs={"order_pk": pk},
                options=ORDER_TASK_OPTIONS,
                request_id=request_id,
            )
            for pk, request_id in waiting
        ]
        claimed = queue.insert_tasks(tasks, claimed_until=claimed_until)
    return len(waiting), claimed
