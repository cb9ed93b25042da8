"""SQLite with a write lock every process of the node waits on in turn (``ENGINE: provision.sqlite``).

SQLite lets one writer in at a time. Its own way of making the others wait is a busy handler that
sleeps in growing steps (1, 2, 5, 10 ... 100 ms) and tries again, so under concurrent writes a
request can sleep tens of milliseconds after the database became free: a /new_order p99 of ~200 ms
at 8 concurrent clients on a 2-core machine, with the writes themselves taking about a millisecond.

Here a writer first takes an exclusive ``flock`` on a file next to the database (``<db>-writelock``).
The kernel wakes the next waiter the moment the holder lets go, so writers queue instead of polling.
Taken for every transaction (with ``transaction_mode: IMMEDIATE`` each one holds SQLite's write lock
from its BEGIN anyway) and for each write statement run outside a transaction; released at commit,
rollback or close. A process that dies holding it releases it with its file descriptor. Each
connection (one per thread) opens its own descriptor, so threads of one process queue too.

SQLite's busy timeout still applies to anything that writes without this lock (another program, the
``sqlite3`` shell), and an in-memory database (the test suite's default) has no lock file and no lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from typing import Any

from django.db.backends.sqlite3 import base

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class WriteLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        if self.held:
            return
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held and self.fd is not None:
            self.held = False
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Connection(sqlite3.Connection):
    write_lock: WriteLock | None = None


def _writes(query: str) -> bool:
    return query.lstrip()[:7].upper().startswith(_WRITES)


class CursorWrapper(base.SQLiteCursorWrapper):
    def _lock_for(self, query: str) -> WriteLock | None:
        connection = self.connection
        lock = getattr(connection, "write_lock", None)
        if lock is None or lock.held or connection.in_transaction or not _writes(query):
            return None
        return lock  # a write in autocommit mode: its own one-statement transaction

    def execute(self, query: str, params: Any = None) -> Any:
        return self._holding_lock_for(query, super().execute, query, params)

    def executemany(self, query: str, param_list: Any) -> Any:
        return self._holding_lock_for(query, super().executemany, query, param_list)

    def _holding_lock_for(self, query: str, run: Any, *args: Any) -> Any:
        lock = self._lock_for(query)
        if lock is None:
            return run(*args)
        lock.acquire()
        try:
            return run(*args)
        finally:
            lock.release()


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["factory"] = Connection
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if not self.is_in_memory_db():
            connection.write_lock = WriteLock(f"{self.settings_dict['NAME']}-writelock")
        return connection

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=CursorWrapper)

    def _lock(self) -> WriteLock | None:
        return getattr(self.connection, "write_lock", None)

    def _start_transaction_under_autocommit(self) -> None:
        lock = self._lock()
        if lock is not None:
            lock.acquire()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # not in the stubs
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            self._release()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self._release()

    def _close(self) -> None:
        lock = self._lock()
        try:
            super()._close()  # type: ignore[misc]
        finally:
            if lock is not None:
                lock.close()

    def _release(self) -> None:
        lock = self._lock()
        if lock is not None and not self.connection.in_transaction:  # a failed COMMIT keeps it until rollback
            lock.release()
