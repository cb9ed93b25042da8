"""Queue worker tasks as part of the transaction that makes them necessary.

django-q2 runs here on its ORM broker, whose queue is a table in the node's own database. A task queued
inside a transaction is therefore committed with it or not at all: an order is never stored without the
task that processes it, and no kick is lost to a crash between a commit and an ``on_commit`` hook. It
also saves the queue insert its own commit.

Two exceptions: in django-q2's ``sync`` mode (tests) a task runs when it is queued, so it is queued on
commit, as before; and while ``orders.pipeline`` is carrying an order along its automatic path in this
thread, the kicks it would make to itself (``deferrable=True``) are not queued at all: the pipeline does
that work next, and if its process dies the task is delivered again and the minute sweep is the net.

``once_per_transaction`` queues one task for any number of calls with the same name in one transaction
(the outbox: a transition that writes three rows needs one delivery run, not three). ``at`` queues a task
that the cluster will not take before that time (the ORM broker's queue row stays locked until then).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

_inline = contextvars.ContextVar("provision_queue_inline", default=False)


@contextmanager
def kicks_deferred() -> Iterator[None]:
    """While inside, ``enqueue(..., deferrable=True)`` queues nothing (the caller does the work itself)."""
    token = _inline.set(True)
    try:
        yield
    finally:
        _inline.reset(token)


def deferring() -> bool:
    return _inline.get()


def _sync() -> bool:
    from django_q.conf import Conf

    return bool(Conf.SYNC)


def _queued_marker(key: str) -> Any:
    def marker() -> None:
        return None

    marker.queue_key = key  # type: ignore[attr-defined]
    return marker


def _already_queued(key: str) -> bool:
    return any(getattr(hook[1], "queue_key", None) == key for hook in connection.run_on_commit)


def _delayed_broker(at: datetime) -> Any:
    """django-q2's ORM broker, queueing rows the cluster will only take from ``at`` on (its dequeue takes
    rows whose lock time has passed; a new row's lock time is normally now)."""
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM

    broker = get_broker()
    if not isinstance(broker, ORM):
        return broker  # other brokers have no delay: the task runs early and finds nothing due yet

    class DelayedOrm(ORM):
        def enqueue(self, task: Any) -> Any:
            return self.get_connection().create(key=self.list_key, payload=task, lock=at).pk

    return DelayedOrm(list_key=broker.list_key)


def enqueue(
    func: str,
    *,
    task_name: str,
    deferrable: bool = False,
    once_per_transaction: bool = False,
    at: datetime | None = None,
    q_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Queue ``func(**kwargs)`` for the worker, inside the current transaction when there is one."""
    from django_q.tasks import async_task

    if deferrable and deferring():
        return

    def push() -> None:
        options = dict(q_options or {})
        if at is not None and at > timezone.now() and not _sync():
            options["broker"] = _delayed_broker(at)
        async_task(func, task_name=task_name, q_options=options, **kwargs)

    if not connection.in_atomic_block:
        push()
        return
    key = f"{func}:{task_name}"
    if once_per_transaction and _already_queued(key):
        return
    if _sync():
        transaction.on_commit(push)
    else:
        push()
    if once_per_transaction:
        # Dropped with the savepoint it was registered in, exactly like the queue row it stands for.
        transaction.on_commit(_queued_marker(key))
