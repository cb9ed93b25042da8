"""The correlation id of django-q2 tasks, so a task's log lines carry the id of the work that caused it.

* ``pre_enqueue`` (in the process that calls ``async_task``): the current id, if there is one, travels
  in the task package under ``TASK_KEY`` — next to the task's own fields, not in its kwargs, so no
  caller and no task function changes.
* ``pre_execute`` (in the worker): the task runs with that id, or with a fresh one when it had none
  (scheduled tasks), and with ``task`` (its name) bound for the log lines it writes.
* ``post_execute_in_worker``: the previous context comes back (it matters in sync mode, where the
  task runs inside the request that enqueued it).

So one order's work — ``/new_order``, the accept, the payout, the fulfil delivery — shares the id of
the request that brought the order in, and the aggregator sees it as ``X-Request-ID``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

import structlog

from provision import request_context

TASK_KEY = "request_id"
_NO_ID = request_context.NO_ID
_stack: list[tuple[contextvars.Token[str], Mapping[str, contextvars.Token[Any]]]] = []


def on_pre_enqueue(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
    current = request_context.get_request_id()
    if current != _NO_ID:
        task.setdefault(TASK_KEY, current)


def on_pre_execute(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
    carried = task.get(TASK_KEY)
    request_id = carried if isinstance(carried, str) and carried else request_context.new_request_id()
    id_token = request_context.set_request_id(request_id)
    bound = structlog.contextvars.bind_contextvars(task=str(task.get("name") or task.get("func")))
    _stack.append((id_token, bound))


def on_post_execute(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
    if not _stack:
        return
    id_token, bound = _stack.pop()
    try:
        structlog.contextvars.reset_contextvars(**bound)
        request_context.reset_request_id(id_token)
    except ValueError:  # a token from another context (cannot happen in django-q2's worker loop)
        structlog.contextvars.unbind_contextvars("task")
        request_context.set_request_id(_NO_ID)


def connect() -> None:
    """Connect the receivers (called once from ``provision.hooks``)."""
    from django_q import signals

    signals.pre_enqueue.connect(on_pre_enqueue, dispatch_uid="provision.task_context.pre_enqueue")
    signals.pre_execute.connect(on_pre_execute, dispatch_uid="provision.task_context.pre_execute")
    signals.post_execute_in_worker.connect(
        on_post_execute, dispatch_uid="provision.task_context.post_execute"
    )
