"""SQLite writers queue on a lock file beside the database (``provision.db.writer_turn``), across threads
and processes, and a waiter goes as soon as the writer before it lets go."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from orders.models import Order
from orders.services import intake
from orders.tests.factories import new_order_offer
from provision import db

HOLD = "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"  # noqa: E501


@contextmanager
def held_by_another_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the writer lock until the block ends."""
    holder = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.communicate(timeout=10)


def in_thread(work: object) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        work()  # type: ignore[operator]
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


@pytest.fixture
def lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "provision.sqlite3.writers"
    monkeypatch.setattr(db, "writer_lock_path", lambda: str(path))
    return path


def test_a_writer_waits_while_another_process_writes_and_goes_when_it_lets_go(lock_file: Path) -> None:
    def write() -> None:
        with db.writer_turn():
            pass

    with held_by_another_process(lock_file):
        thread, done = in_thread(write)
        assert not done.wait(0.3)
    assert done.wait(5)
    thread.join(5)


def test_two_threads_of_one_process_take_turns(lock_file: Path) -> None:
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        with db.writer_turn():
            inside.set()
            release.wait(10)

    def second() -> None:
        with db.writer_turn():
            pass

    in_thread(first)
    assert inside.wait(5)
    _, second_done = in_thread(second)
    assert not second_done.wait(0.3)
    release.set()
    assert second_done.wait(5)


@pytest.mark.django_db(transaction=True)
def test_an_offer_is_stored_in_its_writer_turn(lock_file: Path) -> None:
    offer = new_order_offer()

    def receive() -> None:
        intake.order_receive(offer=offer)

    with held_by_another_process(lock_file):
        _, done = in_thread(receive)
        assert not done.wait(0.3)
        assert not Order.objects.filter(order_id=offer.order_id).exists()
    assert done.wait(10)
    assert Order.objects.filter(order_id=offer.order_id).exists()


def test_no_queue_for_postgresql_or_an_in_memory_sqlite_database(monkeypatch: pytest.MonkeyPatch) -> None:
    if connection.vendor == "sqlite":
        in_memory = "file:memorydb_default?mode=memory&cache=shared"  # pytest-django's SQLite test database
        monkeypatch.setitem(connection.settings_dict, "NAME", in_memory)
        assert db.writer_lock_path() is None
        monkeypatch.setitem(connection.settings_dict, "NAME", "/srv/node/provision.sqlite3")
        assert db.writer_lock_path() == "/srv/node/provision.sqlite3.writers"
    else:
        assert db.writer_lock_path() is None
