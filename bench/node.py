"""What every bench scenario stands on: a fresh database, the node as deployed, its memory, the machine.

* ``Database``: one migrated template per kind (SQLite file, or a PostgreSQL database in the server of
  ``TEST_DATABASE_URL``), copied for each scenario, so every scenario starts from an empty node; read-only
  probes (balances, order counts) from the bench process.
* ``node_env``: the node's environment. Production settings (``provision.settings.base``) with their
  defaults: the bench sets only what a deployment must set (credentials, database, aggregator, PSP) and
  the aggregator's accept window (``ORDER_REQUEST_VALIDITY=10``, the aggregator's example configuration).
* ``MemorySampler``: RSS and PSS of the web and worker process trees every 0.5 s, with each
  process's share at the moment the total peaked.
* ``python_speed_ms``: the CPU time of a fixed pure-Python workload, to scale the CPU-bound targets.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from devtools.processes import ROOT, tree_memory

CLIENT_ID = "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b"
SECRET = "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw="  # noqa: S105  (a local test key, as in test settings)
FUNDS = "100000000000"
ACCOUNT = "0123456789"  # the sandbox pays it (accounts ending 0000/1111/2222/9999 fail on purpose)
ACCEPT_WINDOW_SECONDS = 10  # the aggregator's ORDER_REQUEST_VALIDITY in its example configuration


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --- databases -----------------------------------------------------------------------------------------


class Database:
    """One database kind for a run: a migrated template, and a fresh copy of it per scenario."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.admin_url = os.environ.get("TEST_DATABASE_URL", "")
        self.prefix = f"provision_bench_{os.getpid()}"
        self.copies: list[str] = []
        if kind == "postgres" and not self.admin_url:
            raise RuntimeError("PostgreSQL needs TEST_DATABASE_URL (run through scripts/with-postgres.sh)")
        self.template = self._create(f"{self.prefix}_template")

    def _url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / (name + '.sqlite3')}"
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))

    def _create(self, name: str, template: str = "") -> str:
        if self.kind == "sqlite":
            path = self.workdir / f"{name}.sqlite3"
            if template:
                # SQLite's backup API: a consistent copy whatever the template's journal holds.
                with (
                    sqlite3.connect(self.workdir / f"{template}.sqlite3") as source,
                    sqlite3.connect(path) as target,
                ):
                    source.backup(target)
            return name
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    @property
    def template_url(self) -> str:
        return self._url(self.template)

    def fresh(self, scenario: str) -> Probe:
        """A new database for ``scenario``: a copy of the migrated template."""
        name = self._create(f"{self.prefix}_{scenario}", template=self.template)
        self.copies.append(name)
        return Probe(self.kind, self._url(name))

    def version(self) -> str:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.admin_url) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                return f"PostgreSQL {row[0] if row else '?'}"
        return f"SQLite {sqlite3.sqlite_version}"

    def close(self) -> None:
        if self.kind != "postgres":
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in [*self.copies, self.template]:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Probe:
    """Read-only look-ups into one scenario's database from the bench process."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self._pg: Any = None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "postgres":
            import psycopg

            if self._pg is None:
                self._pg = psycopg.connect(self.url, autocommit=True)
            return list(self._pg.execute(sql).fetchall())
        path = self.url.removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=20) as conn:
            return list(conn.execute(sql).fetchall())

    def scalar(self, sql: str) -> Any:
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def available(self, currency: str = "NGN") -> float:
        """What the node may reserve now (the opening balance credited in the template)."""
        with suppress(Exception):  # the tables exist once migrated; a busy SQLite may refuse a read
            value = self.scalar(
                f"SELECT total - reserved FROM balances_balance WHERE currency = '{currency}'"  # noqa: S608
            )
            return float(value or 0)
        return 0.0

    def summary(self) -> dict[str, Any]:
        """The node's own account of the scenario: orders by status, the most transfers and debits of one
        order (more than one would be a double payout), the outbox rows not delivered."""
        return {
            "orders_by_status": dict(self.rows("SELECT status, count(*) FROM orders_order GROUP BY status")),
            "max_transfers_per_order": self.scalar(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM psp_transfer GROUP BY order_id) t"
            ),
            "max_debits_per_order": self.scalar(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM balances_ledgerentry "
                "WHERE kind = 'DEBIT' GROUP BY order_id) t"
            ),
            "outbox_pending": self.scalar(
                "SELECT count(*) FROM orders_outboxmessage WHERE status = 'pending'"
            ),
            # django-q2 keeps every finished task (Q_CLUSTER save_limit 0): its timers and webhook tasks
            "tasks_by_func": dict(self.rows("SELECT func, count(*) FROM django_q_task GROUP BY func")),
        }

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None


# --- the node ------------------------------------------------------------------------------------------


def node_env(database_url: str, aggregator_url: str, psp: dict[str, str]) -> dict[str, str]:
    """The node's environment: production settings and their defaults, plus what a deployment must set.
    ``BENCH_NODE_ENV`` (``NAME=value,...``) adds settings for experiments; the results record it."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        "PROVISION_READ_DOTENV": "0",
        "DEBUG": "false",
        "DATABASE_URL": database_url,
        "SECRET": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz0123456789",
        "AGGREGATOR_BASE_URL": aggregator_url,
        "AGGREGATOR_CLIENT_ID": CLIENT_ID,
        "AGGREGATOR_SECRET_KEY": SECRET,
        "SANDBOX_WEBHOOK_SECRET": "bench-sandbox-webhook-key-3f9c1a7e5b2d8064",
        "ORDER_REQUEST_VALIDITY": str(ACCEPT_WINDOW_SECONDS),
        "CURRENCIES": "NGN",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **psp,
    }
    env.update(extra_env())
    return env


def extra_env() -> dict[str, str]:
    pairs = [p.strip() for p in os.environ.get("BENCH_NODE_ENV", "").split(",") if p.strip()]
    return dict(p.split("=", 1) for p in pairs)


def sandbox_psp() -> dict[str, str]:
    """The in-database sandbox PSP, answering at once."""
    return {"PSP": "sandbox", "SANDBOX_BALANCES": f"NGN:{FUNDS}", "SANDBOX_LATENCY_SECONDS": "0"}


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare_template(db: Database) -> None:
    """Migrate the template and create the worker's schedules, once per database kind."""
    env = node_env(db.template_url, "http://127.0.0.1:9", sandbox_psp())
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "setup_schedules")
    # What the PSP holds (the sandbox's and the PSP simulator's NGN): a sync records the PSP's figure but
    # never changes the ledger, so the book opens with the same figure and the drift is nil.
    manage(env, "balances", "credit", "--currency", "NGN", "--amount", FUNDS, "--reason", "bench: opening")


# --- memory --------------------------------------------------------------------------------------------


class MemorySampler:
    """Peak RSS and PSS of the node's process trees (``watch`` them as they start; a stopped tree drops
    out), and each process's figures at the moment the total PSS peaked."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self.peak: dict[str, float] = {}
        self.at_peak: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def watch(self, role: str, pid: int | None) -> None:
        with self._lock:
            if pid is None:
                self.pids.pop(role, None)
            else:
                self.pids[role] = pid

    def _sample(self) -> None:
        total_rss = total_pss = 0.0
        members: list[dict[str, Any]] = []
        with self._lock:
            watched = list(self.pids.items())
        for role, pid in watched:
            memory = tree_memory(pid)
            rss, pss = memory.rss_kb / 1024, memory.pss_kb / 1024
            total_rss += rss
            total_pss += pss
            self._max(f"{role}_pss_mb", pss)
            self._max(f"{role}_processes", memory.processes)
            members += [
                {
                    "role": role if member.pid != pid else f"{role} (parent)",
                    "pid": member.pid,
                    "pss_mb": round(member.pss_kb / 1024, 1),
                    "private_mb": round(member.private_kb / 1024, 1),
                    "rss_mb": round(member.rss_kb / 1024, 1),
                }
                for member in memory.members
            ]
        if total_pss > self.peak.get("total_pss_mb", 0.0):
            self.at_peak = members  # which processes held the memory when the total peaked
        self._max("total_rss_mb", total_rss)
        self._max("total_pss_mb", total_pss)

    def _max(self, key: str, value: float) -> None:
        self.peak[key] = round(max(self.peak.get(key, 0.0), value), 1)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with suppress(OSError, ValueError):
                self._sample()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        return dict(self.peak)


# --- the machine ---------------------------------------------------------------------------------------


def python_speed_ms() -> float:
    """CPU milliseconds of a fixed pure-Python workload (JSON and dict work, as the node does), the best of
    three: a shared machine's speed drifts during a run and between runs, and this says by how much."""
    best = float("inf")
    for _ in range(3):
        begin = time.process_time()
        table = {str(i): json.dumps({"amount": str(i), "ids": [i, i + 1]}) for i in range(100_000)}
        best = min(best, time.process_time() - begin)
        del table
    return round(best * 1000, 1)


def machine() -> dict[str, Any]:
    cpu = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (/proc/stat: everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_seconds: float, *, cores: float = 0.3, window: float = 3.0) -> dict[str, float]:
    """Wait (at most ``max_seconds``) until the rest of the machine uses less than ``cores`` cores over
    ``window`` seconds: on a shared machine, other tenants' load takes the node's CPU. Returns how long it
    waited and the other load when it stopped waiting."""
    started = time.monotonic()
    while True:
        busy, own = machine_busy_seconds(), time.process_time()
        time.sleep(window)
        others = (machine_busy_seconds() - busy - (time.process_time() - own)) / window
        waited = time.monotonic() - started
        if others < cores or waited >= max_seconds:
            return {"waited_s": round(waited, 1), "others_cores": round(others, 2)}


def pin_this_process(cores: set[int]) -> None:
    """Move every thread of the bench process (load generator, simulators) to ``cores``; threads started
    later inherit it from the thread that starts them."""
    for task in Path("/proc/self/task").iterdir():
        with suppress(OSError, ValueError):
            os.sched_setaffinity(int(task.name), cores)
