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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import connection, connections, transaction
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


_OPTION_KEYS = ("hook", "group", "save", "cached", "ack_failure", "timeout")


def _insert(func: str, task_name: str, kwargs: dict[str, Any], options: dict[str, Any], at: datetime) -> None:
    """Queue one task on django-q2's ORM broker: the package ``async_task`` would build (same fields,
    signed the same way, ``pre_enqueue`` sent), written with one plain INSERT into its queue table.

    ``async_task`` makes a new broker object and goes through a full ORM ``create`` for every call, about
    three quarters of the cost of queueing; a task is queued for every order offered, on the request
    path. The cluster takes a row once its lock time has passed: ``at`` now, or later for a delayed task.
    """
    from django_q.conf import Conf
    from django_q.models import OrmQ
    from django_q.signals import pre_enqueue
    from django_q.signing import SignedPackage

    task: dict[str, Any] = {"id": uuid.uuid4().hex, "name": task_name, "func": func, "args": ()}
    task.update((key, options[key]) for key in _OPTION_KEYS if key in options)
    if "cached" not in task and Conf.CACHED:
        task["cached"] = Conf.CACHED
    if "ack_failure" not in task and Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["kwargs"] = kwargs
    task["started"] = timezone.now()
    pre_enqueue.send(sender="django_q", task=task)
    db = connections[Conf.ORM]
    quote = db.ops.quote_name
    with db.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(OrmQ._meta.db_table)} ({quote('key')}, {quote('payload')}, {quote('lock')})"  # noqa: S608 - quoted identifiers from the model; values are bound
            " VALUES (%s, %s, %s)",
            [Conf.CLUSTER_NAME, SignedPackage.dumps(task), db.ops.adapt_datetimefield_value(at)],
        )


def _orm_broker() -> bool:
    from django_q.conf import Conf

    return bool(Conf.ORM) and not Conf.BROKER_CLASS


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
        if _sync() or not _orm_broker():  # other brokers cannot delay: the task runs early, finds nothing due
            async_task(func, task_name=task_name, q_options=dict(q_options or {}), **kwargs)
            return
        now = timezone.now()
        _insert(func, task_name, kwargs, q_options or {}, at if at is not None and at > now else now)

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
