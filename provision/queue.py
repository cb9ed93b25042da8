"""Queue django-q2 work as part of the transaction that makes it necessary.

On the ORM broker (the node's default) the queue is a table of the node's own database, so ``async_task``
called inside a transaction writes the task in that transaction: it is committed with the state change
that needs it, or not at all, and no kick is lost to a crash between a commit and an ``on_commit`` hook.
Other brokers, and django-q2's sync mode (the test suite, where a task runs the moment it is queued),
get the task after the commit instead.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task


def enqueue(func: str, *, task_name: str, **kwargs: Any) -> None:
    """Queue ``func(**kwargs)`` for the worker, with the current transaction when there is one."""

    def push() -> None:
        async_task(func, task_name=task_name, **kwargs)

    cluster = settings.Q_CLUSTER
    if cluster.get("orm") and not cluster.get("sync"):
        push()
    else:
        transaction.on_commit(push)
