"""Waiting for one's turn to write on SQLite without SQLite's polling.

SQLite has one writer at a time. A writer that finds the write lock taken waits in SQLite's busy handler,
which polls with sleeps growing to 100 ms rather than queueing: with eight offers arriving at once, a few
in a hundred waited 200 ms or more for a lock that had been free most of that time (README,
*Performance*). ``writer_turn`` queues writers on an ``flock`` of a file beside the database first, which
the kernel hands to the next waiter as soon as the previous writer lets go. It is used where a caller waits
on the write (the aggregator's offers); other writers still queue on the busy handler. PostgreSQL and
in-memory SQLite databases need no turn.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


def writer_lock_path() -> str | None:
    """The lock file of this connection's SQLite database file, or None where writers need no queue."""
    name = str(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or name == ":memory:" or name.startswith("file:"):
        return None
    return f"{name}.writers"


@contextmanager
def writer_turn() -> Iterator[None]:
    """Hold the database's writer queue around a write transaction (enter it before ``atomic``)."""
    path = writer_lock_path()
    if path is None:
        yield
        return
    # Opened on each turn: an flock belongs to an open file, so threads and forked processes sharing one
    # would not exclude each other.
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
