"""Settings come from the environment; a bad value stops start-up with one line naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "PROVISION_READ_DOTENV": "0",
    "DJANGO_SETTINGS_MODULE": "provision.settings.base",
    "SECRET": "biCQWzgsHgtyWftEubOR30K6f2O_AiJkDyq92shsLJnZuHDzLZciLqyT3BzqT1VTwE0",
    "AGGREGATOR_CLIENT_ID": "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b",
    "AGGREGATOR_SECRET_KEY": "QaxTNDq0V-J-gBs-qw2GKUWII01jlhzPuebREKiW64o",
    "SANDBOX_WEBHOOK_SECRET": "DuiqdS8ii0OE0EJhjbt8LmES0oo-foJshuLVAQE6X-c",
    "DATABASE_URL": "sqlite:////tmp/provision-settings-test.sqlite3",
}


def run_check(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {**GOOD_ENV, **{k: v for k, v in overrides.items() if v is not None}}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_valid_environment_boots() -> None:
    result = run_check()

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SECRET": None}, "SECRET"),
        ({"AGGREGATOR_SECRET_KEY": None}, "AGGREGATOR_SECRET_KEY"),
        ({"AGGREGATOR_CLIENT_ID": None}, "AGGREGATOR_CLIENT_ID"),
        ({"SERVER_PORT": "eighty"}, "SERVER_PORT"),
        ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"PROVISION_MODE": "semi"}, "PROVISION_MODE"),
        ({"CURRENCIES": "N1"}, "CURRENCIES"),
        ({"PSP": "paypal"}, "PSP"),
        ({"PSP": "lenco"}, "LENCO_API_KEY"),
        ({"MIN_ORDER_AMOUNT": "NGN:abc"}, "MIN_ORDER_AMOUNT"),
        ({"DATABASE_URL": "mysql://u:p@h/db"}, "DATABASE_URL"),
        ({"AGGREGATOR_BASE_URL": "aggregator.example"}, "AGGREGATOR_BASE_URL"),
    ],
)
def test_bad_setting_stops_boot_with_one_line_naming_it(
    overrides: dict[str, str | None], variable: str
) -> None:
    result = run_check(**overrides)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_sqlite_connections_outlive_a_request_and_keep_a_small_page_cache(tmp_path: Path) -> None:
    script = (
        "import json; from django.db import close_old_connections, connection; "
        "connection.ensure_connection(); before = connection.connection; "
        "close_old_connections(); "  # what Django runs when a request (or django-q2 when a task) ends
        "cache = connection.cursor().execute('PRAGMA cache_size').fetchone()[0]; "
        "print(json.dumps({'kept': connection.connection is before, 'cache_size': cache}))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env={**GOOD_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'node.sqlite3'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"kept": True, "cache_size": -512}


_CONCURRENT_WRITERS = """
import json, threading, time
from django.db import connection, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, seen INTEGER)")
errors, ready = [], threading.Barrier(2)

def writer():  # reads, then writes what it read: the pattern of every locked transition
    try:
        ready.wait()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM item")
            (seen,) = cursor.fetchone()
            time.sleep(0.3)
            cursor.execute("INSERT INTO item (seen) VALUES (%s)", [seen])
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connection.close()

threads = [threading.Thread(target=writer) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with connection.cursor() as cursor:
    cursor.execute("SELECT seen FROM item ORDER BY id")
    print(json.dumps({"errors": errors, "seen": [row[0] for row in cursor.fetchall()]}))
"""


def test_concurrent_sqlite_writers_queue_instead_of_failing_with_database_is_locked(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "manage.py", "shell", "-c", _CONCURRENT_WRITERS],
        cwd=ROOT,
        env={**GOOD_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'node.sqlite3'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    # Both committed, one after the other: the second transaction read the first one's row.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"errors": [], "seen": [0, 1]}


def test_debug_gives_development_defaults_for_secrets() -> None:
    result = run_check(DEBUG="true", SECRET=None, AGGREGATOR_CLIENT_ID=None, AGGREGATOR_SECRET_KEY=None)

    assert result.returncode == 0, result.stderr


def test_amount_maps_accept_a_plain_amount_or_per_currency_list() -> None:
    from decimal import Decimal

    from provision.env import parse_amount_map

    assert parse_amount_map("5000") == {"*": Decimal("5000")}
    assert parse_amount_map("NGN:1000.50, kes:20") == {"NGN": Decimal("1000.50"), "KES": Decimal("20")}
