"""Queue worker tasks as part of the transaction that makes them necessary.

django-q2 runs here on its ORM broker, whose queue is a table in the node's own database. A task queued
inside a transaction is therefore committed with it or not at all: no kick is lost to a crash between a
commit and an ``on_commit`` hook, and the queue insert needs no commit of its own. Rows are written with
one plain INSERT (``insert_tasks``; the worker's dispatcher queues a batch of received orders with one).
New orders themselves are not queued here: received orders are the queue (``orders.dispatch``).

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, connections, transaction
from django.utils import timezone

from provision.task_context import TASK_KEY

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


@dataclass(frozen=True)
class Task:
    """One task to queue: ``func(**kwargs)``, named ``name``; ``request_id`` is the log correlation id it
    runs with (the current one when empty)."""

    func: str
    name: str
    kwargs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""


def _package(task: Task) -> str:
    """The signed package ``async_task`` would build for ``task`` (same fields; ``pre_enqueue`` sent)."""
    from django_q.conf import Conf
    from django_q.signals import pre_enqueue
    from django_q.signing import SignedPackage

    package: dict[str, Any] = {"id": uuid.uuid4().hex, "name": task.name, "func": task.func, "args": ()}
    package.update((key, task.options[key]) for key in _OPTION_KEYS if key in task.options)
    if "cached" not in package and Conf.CACHED:
        package["cached"] = Conf.CACHED
    if "ack_failure" not in package and Conf.ACK_FAILURES:
        package["ack_failure"] = Conf.ACK_FAILURES
    package["kwargs"] = task.kwargs
    package["started"] = timezone.now()
    if task.request_id:
        package[TASK_KEY] = task.request_id
    pre_enqueue.send(sender="django_q", task=package)
    return str(SignedPackage.dumps(package))


def insert_tasks(
    tasks: Sequence[Task], *, at: datetime | None = None, claimed_until: datetime | None = None
) -> list[tuple[int, str]]:
    """Queue ``tasks`` on django-q2's ORM broker with one plain multi-row INSERT into its queue table.

    ``async_task`` makes a new broker object and goes through a full ORM ``create`` for every task, about
    three quarters of the cost of queueing one. The cluster takes a row once its lock time has passed:
    ``at`` (now when not given or past).

    ``claimed_until``: the caller is the cluster's broker and runs the tasks itself: the rows are written
    as django-q2's ``dequeue`` leaves the rows it hands out (locked until then, when another cluster may
    take them again) and returned as ``(id, payload)`` pairs, the broker's own format. Only where the
    database returns inserted rows (PostgreSQL, SQLite >= 3.35); elsewhere they are queued as usual and
    ``[]`` comes back.
    """
    from django_q.conf import Conf
    from django_q.models import OrmQ

    if not tasks:
        return []
    now = timezone.now()
    db = connections[Conf.ORM]
    claim = claimed_until is not None and db.features.can_return_rows_from_bulk_insert
    lock_at = claimed_until if claim else at if at is not None and at > now else now
    lock = db.ops.adapt_datetimefield_value(lock_at)
    quote = db.ops.quote_name
    rows = ", ".join(["(%s, %s, %s)"] * len(tasks))
    returning = f" RETURNING {quote('id')}, {quote('payload')}" if claim else ""
    with db.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(OrmQ._meta.db_table)} ({quote('key')}, {quote('payload')}, {quote('lock')})"  # noqa: S608 - quoted identifiers from the model; values are bound
            f" VALUES {rows}{returning}",
            [value for task in tasks for value in (Conf.CLUSTER_NAME, _package(task), lock)],
        )
        return sorted((int(pk), str(payload)) for pk, payload in cursor.fetchall()) if claim else []


def orm_broker() -> bool:
    """True when django-q2 runs on its ORM broker (this project's, or a subclass of it)."""
    from django.utils.module_loading import import_string
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    if not Conf.ORM:
        return False
    return not Conf.BROKER_CLASS or issubclass(import_string(Conf.BROKER_CLASS), ORM)


def runs_inline() -> bool:
    """True in django-q2's sync mode (the test suite): a queued task runs at once, no cluster is running."""
    return _sync()


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
        if _sync() or not orm_broker():  # other brokers cannot delay: the task runs early, finds nothing due
            async_task(func, task_name=task_name, q_options=dict(q_options or {}), **kwargs)
            return
        insert_tasks([Task(func=func, name=task_name, kwargs=kwargs, options=q_options or {})], at=at)

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
