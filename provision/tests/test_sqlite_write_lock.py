"""SQLite writers queue on the node's lock file instead of SQLite's sleeping busy handler.

Each connection here has SQLite's busy timeout set to 0: without the lock file, a second writer would
fail at once with "database is locked"; with it, the writer waits until the first one is done."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.utils import ConnectionHandler


@pytest.fixture(autouse=True)
def own_connections(django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():  # these tests open their own connections, not the test database
        yield


@pytest.fixture
def database(tmp_path: Path) -> Iterator[ConnectionHandler]:
    options = {"timeout": 0, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL"}
    handler = ConnectionHandler(
        {
            alias: {"ENGINE": "provision.sqlite", "NAME": str(tmp_path / "node.sqlite3"), "OPTIONS": options}
            for alias in ("default", "second")
        }
    )
    for alias in ("default", "second"):
        handler[alias].inc_thread_sharing()  # the waiting side runs in a thread of the test
    with handler["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
    yield handler
    for alias in ("default", "second"):
        handler[alias].close()
        handler[alias].dec_thread_sharing()


def in_thread(work: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # the test asserts on what happened
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def begin(connection: Any) -> None:
    connection.ensure_connection()
    connection._start_transaction_under_autocommit()  # what atomic() does on SQLite


def insert(connection: Any, name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO item (name) VALUES (%s)", [name])
    return name


def names(connection: Any) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM item ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_a_write_outside_a_transaction_waits_for_the_open_transaction_instead_of_failing(
    database: ConnectionHandler,
) -> None:
    first, second = database["default"], database["second"]
    begin(first)
    insert(first, "first")

    thread, outcome = in_thread(lambda: insert(second, "second"))
    thread.join(0.3)
    assert thread.is_alive()  # waiting, not failed

    first.commit()
    thread.join(5)

    assert outcome == ["second"]
    assert names(second) == ["first", "second"]


def test_a_transaction_waits_for_the_open_one_and_starts_when_it_rolls_back(
    database: ConnectionHandler,
) -> None:
    first, second = database["default"], database["second"]
    begin(first)
    insert(first, "rolled back")

    def second_transaction() -> str:
        begin(second)
        insert(second, "second")
        second.commit()
        return "committed"

    thread, outcome = in_thread(second_transaction)
    thread.join(0.3)
    assert thread.is_alive()

    first.rollback()
    thread.join(5)

    assert outcome == ["committed"]
    assert names(first) == ["second"]


def test_readers_do_not_wait_for_a_writer(database: ConnectionHandler) -> None:
    first, second = database["default"], database["second"]
    insert(first, "committed")
    begin(first)
    insert(first, "uncommitted")

    assert names(second) == ["committed"]  # WAL: the reader sees the last commit at once
    first.rollback()


def test_an_in_memory_database_has_no_lock_file(tmp_path: Path) -> None:
    handler = ConnectionHandler({"default": {"ENGINE": "provision.sqlite", "NAME": ":memory:"}})
    connection = handler["default"]
    connection.ensure_connection()

    assert getattr(connection.connection, "write_lock", None) is None
    assert list(tmp_path.iterdir()) == []
    handler.close_all()
