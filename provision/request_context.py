"""The correlation id of the work in progress (a request, a task, an outbox delivery)."""

from __future__ import annotations

import contextvars
import uuid

NO_ID = "-"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NO_ID)


def new_request_id() -> str:
    return uuid.uuid4().hex


def get_request_id() -> str:
    return _request_id.get()


def bound_request_id() -> str:
    """The current id, or "" when no request or task is in progress."""
    current = _request_id.get()
    return "" if current == NO_ID else current


def set_request_id(value: str) -> contextvars.Token[str]:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)
