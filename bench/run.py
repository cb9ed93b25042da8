"""``make bench`` (``python -m bench``): the node under load, on SQLite and PostgreSQL, against its targets.

For each database (a fresh SQLite file in a temp dir; a fresh database in the PostgreSQL server of
``TEST_DATABASE_URL``, which ``scripts/with-postgres.sh`` provides):

1. migrate, create the worker's schedules, fund NGN;
2. start gunicorn as deployed (2 workers x 4 threads, ``gunicorn.conf.py``, no text access log) with
   ``bench.settings`` (the production settings plus the floor view) and the project's
   ``AggregatorSimulator`` as aggregator;
3. **intake** with the worker stopped (the web tier alone, so intake and floor are measured under the
   same conditions): ``POST /_bench/floor``, signed ``POST /new_order`` and seed ``POST /orders`` at
   concurrency 1, 8, 32, 64, closed loop, bounded in time and count, the three taking turns in slices
   of ~1.5 s (a noisy neighbour then slows each alike); the intake rows are then cleared;
4. start the django-q2 worker; **per order**: a batch at 10 orders/s, counting SQL statements, writes and
   commits in every node process (``bench.counters``) and, on PostgreSQL, write transactions from the
   transaction id counter and transactions from ``pg_stat_database`` (idle polling subtracted);
5. **end to end** at fixed offered loads (5, 20, 50 orders/s) for a bounded time: completions per second
   in the steady window, offer->accept and offer->fulfil percentiles from the simulator, the backlog,
   every order's outcome after a bounded drain; ``/tx_status`` asked the way the aggregator's task asks
   (sequential bursts about accepted orders) while orders flow;
6. **memory**: RSS and PSS of the web and worker process trees (``/proc``), sampled every 0.5 s.

Prints a table (each figure against its target from issue 8) and JSON; writes ``bench/results/latest.json``.

Environment: ``BENCH_QUICK=1`` (a smoke run of about a minute: PostgreSQL only unless ``BENCH_DBS`` says
otherwise, short phases), ``BENCH_DBS=sqlite,postgres``, ``BENCH_DURATION``
(seconds per intake point), ``BENCH_E2E_SECONDS`` (seconds per offered load), ``BENCH_RATES=5,20,40,50``,
``BENCH_CONCURRENCY=1,8,32,64``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench import counters, load
from devtools.aggregator_sim import AggregatorSimulator
from devtools.processes import ROOT, NodeProcesses, cpu_seconds, run_node, tree_cpu_seconds, tree_memory

CLIENT_ID = "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b"
SECRET = "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw="  # noqa: S105  (a local test key, as in test settings)
FUNDS = "100000000000"
ACCOUNT = "0123456789"  # the sandbox pays it (accounts ending 0000/1111/2222/9999 fail on purpose)

TARGETS = {
    "intake_ratio_c8": (">=", 0.8),
    "new_order_p99_c8_ms": ("<", 50.0),
    "offer_to_accept_p95_20_ms": ("<", 1000.0),
    "offer_to_fulfilled_p95_20_ms": ("<", 2000.0),
    "e2e_sustained_50_ops": (">=", 40.0),
    "tx_status_p95_ms": ("<", 20.0),
    "peak_memory_mb": ("<", 250.0),
}


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Config:
    quick: bool
    dbs: tuple[str, ...]
    concurrency: tuple[int, ...]
    intake_seconds: float
    intake_warmup: float
    rates: tuple[float, ...]
    e2e_seconds: float
    e2e_warmup: float
    drain_seconds: float
    batch_orders: int
    out: Path

    @classmethod
    def from_env(cls, quick: bool, out: Path) -> Config:
        env = os.environ

        def numbers(name: str, default: str) -> tuple[float, ...]:
            return tuple(float(x) for x in env.get(name, default).split(",") if x.strip())

        return cls(
            quick=quick,
            dbs=tuple(
                x.strip()
                for x in env.get("BENCH_DBS", "postgres" if quick else "sqlite,postgres").split(",")
                if x.strip()
            ),
            concurrency=tuple(int(x) for x in numbers("BENCH_CONCURRENCY", "1,8,32,64")),
            intake_seconds=float(env.get("BENCH_DURATION", "0.8" if quick else "6")),
            intake_warmup=0.2 if quick else 0.5,
            rates=numbers("BENCH_RATES", "5,20" if quick else "5,20,40,50"),
            e2e_seconds=float(env.get("BENCH_E2E_SECONDS", "4" if quick else "20")),
            e2e_warmup=1.0 if quick else 3.0,
            drain_seconds=5.0 if quick else 30.0,
            batch_orders=10 if quick else 100,
            out=out,
        )


# --- databases -----------------------------------------------------------------------------------------


class Database:
    """A fresh database for one run, and read-only probes into it from the bench process."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.admin_url = ""
        self.name = ""
        self._pg: Any = None
        if kind == "sqlite":
            self.path = workdir / "bench.sqlite3"
            self.url = f"sqlite:///{self.path}"
            return
        import psycopg

        self.admin_url = os.environ.get("TEST_DATABASE_URL", "")
        if not self.admin_url:
            raise RuntimeError("PostgreSQL needs TEST_DATABASE_URL (run through scripts/with-postgres.sh)")
        self.name = f"provision_bench_{os.getpid()}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        parts = urlsplit(self.admin_url)
        self.url = urlunsplit(parts._replace(path=f"/{self.name}"))

    def connect(self) -> None:
        if self.kind == "postgres":
            import psycopg

            self._pg = psycopg.connect(self.url, autocommit=True)

    def scalar(self, sql: str) -> Any:
        if self.kind == "postgres":
            row = self._pg.execute(sql).fetchone()
            return row[0] if row else None
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=20) as conn:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

    def version(self) -> str:
        if self.kind == "postgres":
            return str(self.scalar("SHOW server_version"))
        return sqlite3.sqlite_version

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        if self.kind == "postgres" and self.name:
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def vacuum(self) -> None:
        """Reclaim the rows the intake phase deleted and refresh the planner's statistics."""
        if self.kind == "postgres":
            self._pg.execute("VACUUM ANALYZE")
        else:
            with sqlite3.connect(self.path, timeout=20) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("ANALYZE")

    # figures only PostgreSQL has
    def xid_next(self) -> int | None:
        if self.kind != "postgres":
            return None
        return int(self.scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"))

    def xact_commit(self) -> int | None:
        if self.kind != "postgres":
            return None
        self._pg.execute("SELECT pg_stat_clear_snapshot()")
        return int(self.scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))

    def statements_available(self) -> bool:
        if self.kind != "postgres":
            return False
        preload = str(self.scalar("SHOW shared_preload_libraries"))
        if "pg_stat_statements" not in preload:
            return False
        self._pg.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return True

    def statement_calls(self) -> int:
        return int(
            self.scalar(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d "
                "ON d.oid = s.dbid WHERE d.datname = current_database()"
            )
        )


def node_settings(database_url: str) -> dict[str, str]:
    """The node's settings under benchmark (bench.settings, sandbox PSP answering at once), for the node's
    processes here and for bench.profile's single process."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "PROVISION_READ_DOTENV": "0",
        "DEBUG": "false",
        "DATABASE_URL": database_url,
        "SECRET": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz0123456789",
        "AGGREGATOR_CLIENT_ID": CLIENT_ID,
        "AGGREGATOR_SECRET_KEY": SECRET,
        "SANDBOX_WEBHOOK_SECRET": "bench-sandbox-webhook-key-3f9c1a7e5b2d8064",
        "CURRENCIES": "NGN",
        "PSP": "sandbox",
        "SANDBOX_BALANCES": f"NGN:{FUNDS}",
        "SANDBOX_LATENCY_SECONDS": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "info",
    }


def node_env(db: Database, aggregator_url: str, stats_dir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
        **node_settings(db.url),
        "AGGREGATOR_BASE_URL": aggregator_url,
        "BENCH_STATS_DIR": str(stats_dir),
    }


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


# --- memory --------------------------------------------------------------------------------------------


class MemorySampler:
    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self.peak: dict[str, float] = {}
        self.at_peak: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def watch(self, role: str, pid: int) -> None:
        self.pids[role] = pid

    def _sample(self) -> None:
        total_rss = total_pss = 0.0
        members: list[dict[str, Any]] = []
        for role, pid in list(self.pids.items()):
            memory = tree_memory(pid)
            rss, pss = memory.rss_kb / 1024, memory.pss_kb / 1024
            total_rss += rss
            total_pss += pss
            self._max(f"{role}_rss_mb", rss)
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
        self._thread.join(5)
        return dict(self.peak)


# --- phases --------------------------------------------------------------------------------------------


INTAKE_SLICE_SECONDS = 1.5


def run_intake(node: NodeProcesses, config: Config) -> dict[str, Any]:
    parts = urlsplit(node.url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    factories: dict[str, Callable[[], load.RequestFactory]] = {
        "floor": load.floor_factory,
        "new_order": lambda: load.new_order_factory(SECRET),
        "seed_orders": lambda: load.seed_order_factory(SECRET, CLIENT_ID),
    }
    points: dict[str, dict[str, Any]] = {name: {} for name in factories}
    made = {name: make() for name, make in factories.items()}
    # The endpoints take turns in short slices, so a noisy neighbour on a shared machine slows each of
    # them alike instead of whichever happened to be running: the ratios are what the bench tracks.
    rounds = max(1, round(config.intake_seconds / INTAKE_SLICE_SECONDS))
    slice_seconds = config.intake_seconds / rounds
    for concurrency in config.concurrency:
        slices: dict[str, list[load.LoadResult]] = {name: [] for name in factories}
        cpu: dict[str, float] = dict.fromkeys(factories, 0.0)
        sent: dict[str, float] = dict.fromkeys(factories, 0.0)  # warm-up requests included, like the CPU
        for _ in range(rounds):
            for name, factory in made.items():
                cpu_before = tree_cpu_seconds(node.web.pid)
                slices[name].append(
                    load.closed_loop(
                        name=name,
                        host=host,
                        port=port,
                        factory=factory,
                        concurrency=concurrency,
                        duration=slice_seconds,
                        warmup=config.intake_warmup,
                        max_requests=20_000,
                        # signed before the clock starts: enough for 1,500 req/s, the rest signed on the fly
                        prebuilt=int(1500 * (slice_seconds + config.intake_warmup)),
                    )
                )
                cpu[name] += tree_cpu_seconds(node.web.pid) - cpu_before
                sent[name] += (
                    slices[name][-1].requests * (slice_seconds + config.intake_warmup) / slice_seconds
                )
        for name in factories:
            result = load.combine(slices[name])
            points[name][str(concurrency)] = result.as_dict()
            # Web CPU per request (warm-ups included in both): steadier under a noisy neighbour than req/s.
            points[name][str(concurrency)]["web_cpu_ms_per_request"] = round(
                cpu[name] * 1000 / max(sent[name], 1), 2
            )
            latency = result.as_dict()["latency_ms"]
            log(
                f"intake {name:<11} c={concurrency:<3} {result.throughput:7.1f} req/s "
                f"p50={latency['p50']} p95={latency['p95']} p99={latency['p99']} errors={result.errors}"
            )
    ratios = {}
    for concurrency in config.concurrency:
        floor = points["floor"][str(concurrency)]["throughput_rps"]
        ratios[str(concurrency)] = {
            name: round(points[name][str(concurrency)]["throughput_rps"] / floor, 3) if floor else None
            for name in ("new_order", "seed_orders")
        }
    cpu_ratios = {}
    for concurrency in config.concurrency:
        floor_cpu = points["floor"][str(concurrency)]["web_cpu_ms_per_request"]
        cpu_ratios[str(concurrency)] = {
            name: round(floor_cpu / points[name][str(concurrency)]["web_cpu_ms_per_request"], 3)
            if points[name][str(concurrency)]["web_cpu_ms_per_request"]
            else None
            for name in ("new_order", "seed_orders")
        }
    return {"points": points, "ratio_to_floor": ratios, "cpu_ratio_to_floor": cpu_ratios}


class TxStatusPoller:
    """The aggregator's /tx_status task, compressed in time: every second, ask sequentially about up
    to ``batch`` orders the aggregator has accepted (case 2, with psp and txId, once a fulfilment is
    known), over one connection. Answers are not applied to the simulator."""

    def __init__(self, sim: AggregatorSimulator, url: str, batch: int = 20) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", int(parts.port or 80)
        self.sim = sim
        self.batch = batch
        self.ids: list[str] = []
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-tx-status", daemon=True)
        self._random = random.Random(8)  # noqa: S311

    def start(self) -> TxStatusPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        while not self._stop.wait(1.0):
            candidates = list(self.ids[-200:])
            self._random.shuffle(candidates)
            asked = 0
            for order_id in candidates:
                if asked >= self.batch or self._stop.is_set():
                    break
                snapshot = self.sim.order(order_id)
                if snapshot.accepted_mono is None:
                    continue
                asked += 1
                fulfilment = snapshot.fulfilments[-1] if snapshot.fulfilments else None
                request = load.tx_status_request(
                    SECRET,
                    order_id,
                    psp=fulfilment.psp if fulfilment else "",
                    tx_id=fulfilment.tx_id if fulfilment else "",
                )
                begin = time.perf_counter()
                status, connection = load.post(connection, request)
                self.latencies.append((time.perf_counter() - begin) * 1000)
                self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        connection.close()


def _quiet(db: Database, sim: AggregatorSimulator, ids: list[str], timeout: float) -> bool:
    """Every order in ``ids`` is settled at the simulator, no outbox row is pending and the queue is empty."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while time.monotonic() < deadline:
        pending = {i for i in pending if not sim.order(i).terminal}
        if not pending:
            outbox = db.scalar("SELECT count(*) FROM orders_outboxmessage WHERE status = 'pending'")
            queued = db.scalar("SELECT count(*) FROM django_q_ormq")
            if outbox == 0 and queued == 0:
                return True
        time.sleep(0.2)
    return False


def _offer(sim: AggregatorSimulator) -> str:
    return sim.offer(
        "5000", currency="NGN", institution="ABNGNGLA", account_identifier=ACCOUNT, block=False
    ).id


def _snapshot(db: Database, stats_dir: Path, statements: bool) -> dict[str, Any]:
    return {
        "at": time.monotonic(),
        "counts": counters.read_totals(stats_dir),
        "xid": db.xid_next(),
        "statements": db.statement_calls() if statements else None,
    }


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {"seconds": after["at"] - before["at"]}
    for role in ("web", "worker"):
        for key in ("queries", "writes", "commits"):
            out[f"{role}_{key}"] = after["counts"].get(role, {}).get(key, 0) - before["counts"].get(
                role, {}
            ).get(key, 0)
    if after["xid"] is not None:
        out["write_transactions"] = after["xid"] - before["xid"]
    if after["statements"] is not None:
        out["statements"] = after["statements"] - before["statements"]
    return out


def _by_statement(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    """Per order, for each role, the statements by verb and table (largest first)."""
    out: dict[str, dict[str, float]] = {}
    for role in ("web", "worker"):
        start = before["counts"].get(role, {}).get("by_statement", {})
        end = after["counts"].get(role, {}).get("by_statement", {})
        rows = {key: (end[key] - start.get(key, 0)) / n for key in end}
        out[role] = {k: round(v, 2) for k, v in sorted(rows.items(), key=lambda kv: -kv[1]) if v >= 0.05}
    return out


def run_per_order(
    sim: AggregatorSimulator, db: Database, stats_dir: Path, config: Config, node: NodeProcesses
) -> dict[str, Any]:
    statements = False
    with suppress(Exception):
        statements = db.statements_available()
    switch = counters.counting_switch(stats_dir)
    switch.parent.mkdir(parents=True, exist_ok=True)
    switch.touch()  # every node process counts its statements from now until the batch is measured
    try:
        return _measure_per_order(sim, db, stats_dir, config, node, statements)
    finally:
        switch.unlink(missing_ok=True)


def _measure_per_order(
    sim: AggregatorSimulator,
    db: Database,
    stats_dir: Path,
    config: Config,
    node: NodeProcesses,
    statements: bool,
) -> dict[str, Any]:
    time.sleep(0.5 if config.quick else 1.0)
    idle_before = _snapshot(db, stats_dir, statements)
    idle_commits_before = db.xact_commit()
    time.sleep(2.0 if config.quick else 5.0)
    idle_after = _snapshot(db, stats_dir, statements)
    idle_commits_after = db.xact_commit()
    idle = _delta(idle_after, idle_before)

    def cpu() -> tuple[float, float]:
        worker = node.worker.pid if node.worker else node.web.pid
        return tree_cpu_seconds(node.web.pid), tree_cpu_seconds(worker)

    idle_cpu = cpu()
    time.sleep(2.0)
    idle_cpu_rate = [(b - a) / 2.0 for a, b in zip(idle_cpu, cpu(), strict=True)]
    start = _snapshot(db, stats_dir, statements)
    commits_start = db.xact_commit()
    cpu_start = cpu()
    ids = []
    t0 = time.monotonic()
    for i in range(config.batch_orders):
        _sleep_until(t0 + i / 10.0)
        ids.append(_offer(sim))
    quiet = _quiet(db, sim, ids, timeout=60)
    cpu_end = cpu()
    time.sleep(0.6)  # let every process flush its counts
    end = _snapshot(db, stats_dir, statements)
    batch = _delta(end, start)
    commits_end = None
    if db.kind == "postgres" and not config.quick:
        time.sleep(11)  # idle backends report their statistics at most every 10 s
        commits_end = db.xact_commit()
    n = len(ids)
    validated = sum(sim.order(i).state == "validated" for i in ids)
    per_order: dict[str, Any] = {"orders": n, "validated": validated, "quiet": quiet}
    for key, value in batch.items():
        if key == "seconds":
            continue
        idle_rate = idle.get(key, 0.0) / idle["seconds"]
        per_order[key] = round((value - idle_rate * batch["seconds"]) / n, 2)
        per_order[f"{key}_raw"] = round(value / n, 2)
    per_order["queries"] = round(per_order["web_queries"] + per_order["worker_queries"], 2)
    per_order["commits"] = round(per_order["web_commits"] + per_order["worker_commits"], 2)
    per_order["idle_per_second"] = {
        k: round(v / idle["seconds"], 2) for k, v in idle.items() if k != "seconds"
    }
    if commits_end is not None and commits_start is not None and idle_commits_before is not None:
        idle_rate = (idle_commits_after or 0) - idle_commits_before
        idle_rate_s = idle_rate / idle["seconds"]
        elapsed = time.monotonic() - start["at"]
        per_order["pg_xact_commit_raw"] = round((commits_end - commits_start) / n, 2)
        per_order["pg_xact_commit"] = round((commits_end - commits_start - idle_rate_s * elapsed) / n, 2)
    per_order["pg_stat_statements"] = statements
    elapsed = end["at"] - start["at"]
    for i, role in enumerate(("web", "worker")):
        used = cpu_end[i] - cpu_start[i] - idle_cpu_rate[i] * elapsed
        per_order[f"{role}_cpu_ms"] = round(used * 1000 / n, 1)
    per_order["statements_by_table"] = _by_statement(start, end, n)
    log(f"per order: {json.dumps(per_order)}")
    return per_order


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_x) ** 2 for p in points)
    if var == 0:
        return 0.0
    return sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / var


def _server_cpu_seconds(name: str = "postgres") -> float:
    """CPU time used so far by the live processes called ``name`` (the database server) and by those of
    their children that ended (a backend whose connection closed)."""
    named = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.find("(") + 1 : stat.rfind(")")] == name:
            named.append(int(entry.name))
    return cpu_seconds(named)


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (/proc/stat: everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _cpu_split(node: NodeProcesses) -> dict[str, float]:
    """CPU seconds so far of each party on the machine: the node's web and worker trees, the database
    server, this process (load generator, aggregator simulator, /tx_status poller), and the
    whole machine (``machine``: every core's busy time, whoever used it)."""
    worker = node.worker.pid if node.worker else None
    return {
        "web": tree_cpu_seconds(node.web.pid),
        "worker": tree_cpu_seconds(worker) if worker else 0.0,
        "database": _server_cpu_seconds(),
        "bench": time.process_time(),
        "machine": _machine_busy_seconds(),
    }


def _cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Seconds each party used between two ``_cpu_split`` readings."""
    return {party: after[party] - before[party] for party in before}


def run_rate(
    sim: AggregatorSimulator, poller: TxStatusPoller, rate: float, config: Config, node: NodeProcesses
) -> dict[str, Any]:
    duration = config.e2e_seconds
    total = int(rate * duration)
    ids: list[str] = []
    pending: set[str] = set()
    backlog: list[tuple[float, float]] = []
    poller.ids = ids
    asked_before = len(poller.latencies)
    cpu_before = _cpu_split(node)
    t0 = time.monotonic()
    next_sample = t0
    for i in range(total):
        _sleep_until(t0 + i / rate)
        order_id = _offer(sim)
        ids.append(order_id)
        pending.add(order_id)
        if time.monotonic() >= next_sample:
            pending = sim.unsettled(pending)
            backlog.append((time.monotonic() - t0, float(len(pending))))
            next_sample += 1.0
    offered_for = time.monotonic() - t0
    drain_deadline = time.monotonic() + config.drain_seconds
    while pending and time.monotonic() < drain_deadline:
        pending = sim.unsettled(pending)
        time.sleep(0.2)
    drained_after = time.monotonic() - t0 - offered_for
    cpu = _cpu_used(cpu_before, _cpu_split(node))
    wall = time.monotonic() - t0
    orders = [sim.order(o) for o in ids]
    outcomes: dict[str, int] = {}
    for order in orders:
        outcomes[order.state] = outcomes.get(order.state, 0) + 1
    window = (t0 + min(config.e2e_warmup, duration / 2), t0 + duration)  # a short run keeps half
    completed = sum(
        1
        for order in orders
        if order.validated_mono is not None and window[0] <= order.validated_mono <= window[1]
    )
    second_half = [p for p in backlog if p[0] >= duration / 2]

    def latencies(attr: str) -> list[float]:
        return [v for v in (getattr(o, attr) for o in orders) if v is not None]

    result: dict[str, Any] = {
        "offered_rate": rate,
        "offered": len(ids),
        "offered_for_s": round(offered_for, 2),
        "completed_per_s": round(completed / (window[1] - window[0]), 2),
        "outcomes": outcomes,
        "errors": len(ids) - outcomes.get("validated", 0),
        "notify_failures": sum(1 for o in orders if o.notify_ok is False),
        "backlog_samples": [(round(t, 1), int(n)) for t, n in backlog],
        "backlog_growth_per_s": round(_slope(second_half), 2),
        "not_settled_after_drain": len(pending),
        "drain_s": round(drained_after, 2),
        "offer_to_accept_ms": load.summarise_ms(latencies("offer_to_accept_ms")),
        "offer_to_fulfilled_pending_ms": load.summarise_ms(latencies("offer_to_fulfilled_ms")),
        "offer_to_fulfilled_reported_ms": load.summarise_ms(latencies("offer_to_validated_ms")),
        "new_order_answer_ms": load.summarise_ms([o.notify_ms for o in orders if o.notify_ms is not None]),
        "tx_status_ms": load.summarise_ms(poller.latencies[asked_before:]),
        # CPU per offered order, offering and draining included, of everything sharing the machine's cores
        "cpu_ms_per_order": {
            party: round(seconds * 1000 / max(len(ids), 1), 2) for party, seconds in cpu.items()
        },
        "cpu_busy_share": round(cpu["machine"] / (wall * (os.cpu_count() or 1)), 3),
    }
    log(
        f"e2e {rate:g}/s: completed {result['completed_per_s']}/s, outcomes {outcomes}, "
        f"accept p95 {result['offer_to_accept_ms']['p95']} ms, "
        f"fulfilled p95 {result['offer_to_fulfilled_reported_ms']['p95']} ms, "
        f"backlog growth {result['backlog_growth_per_s']}/s, CPU ms/order {result['cpu_ms_per_order']}, "
        f"cores busy {result['cpu_busy_share']:.0%}"
    )
    return result


@contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="provision-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_backend(kind: str, config: Config) -> dict[str, Any]:
    log(f"--- {kind} ---")
    with _workdir() as workdir:
        stats_dir = workdir / "stats"
        db = Database(kind, workdir)
        sim = AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET, validity_seconds=30, tx_status_after=30)
        sim.start()
        memory = MemorySampler().start()
        try:
            env = node_env(db, sim.base_url, stats_dir)
            started = time.monotonic()
            manage(env, "migrate", "--no-input", "-v", "0")
            manage(env, "setup_schedules")
            manage(env, "bench_db", "prepare", "--amount", FUNDS)
            db.connect()
            log(f"{kind} {db.version()} ready in {time.monotonic() - started:.1f} s")
            result: dict[str, Any] = {"database": f"{kind} {db.version()}"}
            with run_node(env, workdir / "logs", with_worker=False, access_log=False) as node:
                sim.node_url = node.url
                memory.watch("web", node.web.pid)
                result["intake"] = run_intake(node, config)
                result["intake_cleared"] = json.loads(manage(env, "bench_db", "clear-intake"))
                db.vacuum()  # the intake left tens of thousands of dead rows: not a state a node runs in
                worker = node.start_worker()
                if not node.wait_worker_ready():
                    raise RuntimeError("the worker did not start")
                memory.watch("worker", worker.pid)
                result["per_order"] = run_per_order(sim, db, stats_dir, config, node)
                poller = TxStatusPoller(sim, node.url).start()
                try:
                    result["e2e"] = {
                        f"{rate:g}": run_rate(sim, poller, rate, config, node) for rate in config.rates
                    }
                finally:
                    poller.stop()
                result["tx_status"] = {
                    "latency_ms": load.summarise_ms(poller.latencies),
                    "status_counts": poller.statuses,
                }
                log(f"tx_status: {result['tx_status']}")
                result["final_state"] = json.loads(manage(env, "bench_db", "summary"))
                result["violations"] = [f"{v.kind}: {v.detail}" for v in sim.violations()][:20]
            result["memory_peak"] = memory.stop()
            result["memory_at_peak"] = memory.at_peak
            log(f"memory: {result['memory_peak']}")
            log(f"memory at the peak, per process: {memory.at_peak}")
            return result
        finally:
            memory.stop()
            sim.stop()
            db.close()


# --- report --------------------------------------------------------------------------------------------


def _get(data: dict[str, Any], *path: str) -> Any:
    current: Any = data
    for key in path:
        if not isinstance(current, dict) or key not in current:
            return None
        current = current[key]
    return current


def figures(run: dict[str, Any]) -> dict[str, Any]:
    e2e_top = max(run.get("e2e", {"0": {}}), key=float, default="0")
    return {
        "intake_ratio_c8": _get(run, "intake", "ratio_to_floor", "8", "new_order"),
        "seed_ratio_c8": _get(run, "intake", "ratio_to_floor", "8", "seed_orders"),
        "new_order_p99_c8_ms": _get(run, "intake", "points", "new_order", "8", "latency_ms", "p99"),
        "new_order_rps_c8": _get(run, "intake", "points", "new_order", "8", "throughput_rps"),
        "floor_rps_c8": _get(run, "intake", "points", "floor", "8", "throughput_rps"),
        "offer_to_accept_p95_20_ms": _get(run, "e2e", "20", "offer_to_accept_ms", "p95"),
        "offer_to_fulfilled_p95_20_ms": _get(run, "e2e", "20", "offer_to_fulfilled_reported_ms", "p95"),
        "e2e_sustained_50_ops": _get(run, "e2e", "50", "completed_per_s"),
        "e2e_completed_40_ops": _get(run, "e2e", "40", "completed_per_s"),
        "e2e_backlog_growth_40": _get(run, "e2e", "40", "backlog_growth_per_s"),
        "e2e_top_rate": e2e_top,
        "e2e_top_errors": _get(run, "e2e", e2e_top, "errors"),
        "e2e_top_backlog_growth": _get(run, "e2e", e2e_top, "backlog_growth_per_s"),
        "tx_status_p95_ms": _get(run, "tx_status", "latency_ms", "p95"),
        "peak_memory_mb": _get(run, "memory_peak", "total_pss_mb"),
        "peak_rss_mb": _get(run, "memory_peak", "total_rss_mb"),
        "intake_cpu_ratio_c8": _get(run, "intake", "cpu_ratio_to_floor", "8", "new_order"),
        "new_order_cpu_ms_c8": _get(run, "intake", "points", "new_order", "8", "web_cpu_ms_per_request"),
        "floor_cpu_ms_c8": _get(run, "intake", "points", "floor", "8", "web_cpu_ms_per_request"),
        "worker_cpu_ms_per_order": _get(run, "per_order", "worker_cpu_ms"),
        "web_cpu_ms_per_order": _get(run, "per_order", "web_cpu_ms"),
        "queries_per_order": _get(run, "per_order", "queries"),
        "commits_per_order": _get(run, "per_order", "commits"),
        "write_transactions_per_order": _get(run, "per_order", "write_transactions"),
    }


def verdict(name: str, value: Any) -> str:
    if name not in TARGETS:
        return ""
    if value is None:
        return "n/a"
    op, target = TARGETS[name]
    ok = value >= target if op == ">=" else value < target
    return "PASS" if ok else "MISS"


ROWS = [
    ("intake_ratio_c8", "signed /new_order throughput / floor (c=8)", ">= 0.8"),
    ("seed_ratio_c8", "seed /orders throughput / floor (c=8)", "-"),
    ("new_order_rps_c8", "/new_order req/s (c=8)", "-"),
    ("floor_rps_c8", "floor req/s (c=8)", "-"),
    ("intake_cpu_ratio_c8", "floor CPU / /new_order CPU per request (c=8)", "(>= 0.8)"),
    ("new_order_cpu_ms_c8", "web CPU ms per /new_order (c=8)", "-"),
    ("floor_cpu_ms_c8", "web CPU ms per floor request (c=8)", "-"),
    ("new_order_p99_c8_ms", "/new_order p99 ms (c=8)", "< 50"),
    ("offer_to_accept_p95_20_ms", "offer->accept p95 ms at 20/s", "< 1000"),
    ("offer_to_fulfilled_p95_20_ms", "offer->fulfilled reported p95 ms at 20/s", "< 2000"),
    ("e2e_sustained_50_ops", "end-to-end completed/s at 50/s offered", ">= 40 (PostgreSQL)"),
    ("e2e_completed_40_ops", "end-to-end completed/s at 40/s offered", "40 (keeps up)"),
    ("e2e_backlog_growth_40", "backlog growth orders/s at 40/s offered", "~0"),
    ("e2e_top_errors", "errors at the top offered load", "0"),
    ("e2e_top_backlog_growth", "backlog growth orders/s at the top load", "~0"),
    ("tx_status_p95_ms", "/tx_status p95 ms while orders flow", "< 20"),
    ("peak_memory_mb", "web + worker peak PSS MB", "< 250"),
    ("peak_rss_mb", "web + worker peak RSS MB", "-"),
    ("worker_cpu_ms_per_order", "worker CPU ms per order (10 orders/s)", "-"),
    ("web_cpu_ms_per_order", "web CPU ms per order (10 orders/s)", "-"),
    ("queries_per_order", "SQL statements per order (web + worker)", "-"),
    ("commits_per_order", "explicit commits per order (atomic blocks)", "-"),
    ("write_transactions_per_order", "write transactions per order (PostgreSQL xids)", "-"),
]


def table(results: dict[str, Any]) -> str:
    runs = results["runs"]
    kinds = list(runs)
    head = f"| {'figure':<46} | {'target':<18} | " + " | ".join(f"{k:<16}" for k in kinds) + " |"
    lines = [head, "|" + "-" * 48 + "|" + "-" * 20 + "|" + "|".join("-" * 18 for _ in kinds) + "|"]
    for key, label, target in ROWS:
        cells = []
        for kind in kinds:
            value = results["figures"][kind].get(key)
            mark = verdict(key, value)
            text = (
                "n/a" if value is None else (f"{value:g}" if isinstance(value, int | float) else str(value))
            )
            cells.append(f"{text} {mark}".strip())
        lines.append(f"| {label:<46} | {target:<18} | " + " | ".join(f"{c:<16}" for c in cells) + " |")
    return "\n".join(lines)


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
        "python_speed_ms_start": python_speed_ms(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the provision node")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--report", type=Path, help="print the table of an earlier run's JSON and exit")
    args = parser.parse_args(argv)
    if args.report:
        report(json.loads(args.report.read_text()))
        return 0
    config = Config.from_env(args.quick, args.out)
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": "make bench" + (" (BENCH_QUICK=1)" if config.quick else ""),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in config.__dict__.items()},
        "runs": {},
    }
    log(f"python speed (lower is faster): {results['machine']['python_speed_ms_start']} ms")
    for kind in config.dbs:
        if kind == "postgres" and not os.environ.get("TEST_DATABASE_URL"):
            log(
                "skipping PostgreSQL: TEST_DATABASE_URL is not set (make bench runs scripts/with-postgres.sh)"
            )
            continue
        results["runs"][kind] = run_backend(kind, config)
    results["figures"] = {kind: figures(run) for kind, run in results["runs"].items()}
    results["verdicts"] = {
        kind: {key: verdict(key, value) for key, value in figs.items() if key in TARGETS}
        for kind, figs in results["figures"].items()
    }
    results["machine"]["python_speed_ms_end"] = python_speed_ms()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, indent=2, default=str))
    out(json.dumps(results, indent=2, default=str))
    report(results)
    out(f"written to {config.out}")
    return 0


def report(results: dict[str, Any]) -> None:
    """The table of figures against their targets, with the machine and the command."""
    machine_info = results["machine"]
    out()
    out(table(results))
    out()
    out(
        f"{results['command']} on {machine_info['cores']} cores ({machine_info['cpu']}), "
        f"{machine_info['memory_gb']} GB, Python {machine_info['python']}; "
        + ", ".join(run.get("database", kind) for kind, run in results["runs"].items())
        + f"; {results['elapsed_s']} s"
    )
    if "python_speed_ms_start" in machine_info:  # runs before this figure existed lack it
        out(
            f"Python speed (fixed workload, lower is faster): {machine_info['python_speed_ms_start']} ms at "
            f"the start, {machine_info.get('python_speed_ms_end', '?')} ms at the end"
        )
