"""``make bench`` (``python -m bench``): the node against the product's targets (issue 16), on SQLite and
PostgreSQL.

Every scenario runs the default deployment (``provision.settings.base`` with its defaults: gunicorn as
``gunicorn.conf.py`` and ``devtools.processes.run_node`` start it, 2 workers x 4 threads; ``manage.py
worker``: django-q2's cluster, ``WORKER_PROCESSES``, and the lane, ``ACCEPT_LANE_THREADS`` and
``PAYOUT_LANE_THREADS``) on a fresh copy of a migrated database, with the aggregator simulator as the
aggregator (accept window 10 s, as in the aggregator's example configuration: the node's
``ORDER_REQUEST_VALIDITY=10``). See ``bench.scenarios``.

=========== ===================== ================================================= ====================
scenario    databases             load                                              PSP
=========== ===================== ================================================= ====================
intake      SQLite, PostgreSQL    signed ``/new_order``, 8 clients back to back,    (web alone)
                                  web alone
burst       SQLite, PostgreSQL    50 orders within 5 s (10/s)                       Lenco simulator, 2.5 s
sustained   PostgreSQL            10 orders/s for 60 s                              Lenco simulator, 2.5 s
steady      PostgreSQL            21 orders/s for 60 s (5 % above the target)       sandbox (instant)
small box   SQLite                10 orders/s for 60 s, every node process pinned   sandbox (instant)
                                  to one core (``taskset -c 0``)
=========== ===================== ================================================= ====================

The Lenco simulator (``devtools.psp_sim``) answers each payout POST after 2.5 s and each read after 0.5 s,
over real HTTP through the node's Lenco adapter. ``/tx_status`` is asked while orders flow (burst,
sustained, steady); memory is sampled throughout (web + worker, the payout lane in it; PSS).

CPU-bound targets (steady, small box, ``/new_order`` p99, ``/tx_status`` p95) hold when the fixed Python
workload (``bench.node.python_speed_ms``) takes 200 ms; on a slower machine (or day) they scale with it:
latency targets x max(1, workload/200), rate targets and the rates offered / max(1, workload/200). The
workload is timed before each such scenario. Slow-PSP targets and memory do not scale.

Prints a table (each figure against its target) and writes ``bench/results/latest.json``.

Environment: ``BENCH_QUICK=1`` (shorter phases, ~2-3 minutes), ``BENCH_DBS=sqlite,postgres``,
``BENCH_SCENARIOS=intake,burst,sustained,steady,smallbox`` (a subset, for experiments),
``BENCH_NODE_ENV=NAME=value,...`` (settings added to the node's environment, for experiments),
``BENCH_QUIET_WAIT`` (seconds to wait at most, before each scenario, for the machine's other tenants to
use less than 0.3 cores: 60, 10 in quick mode).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.node import (
    Database,
    MemorySampler,
    extra_env,
    log,
    machine,
    out,
    prepare_template,
    python_speed_ms,
    wait_for_quiet,
)
from bench.scenarios import Load, Psp, bench_process_off_core, deployed, intake, offered_load
from devtools.processes import ROOT

REFERENCE_WORKLOAD_MS = 200.0
SLOW_PSP = Psp(latency=2.5, read_latency=0.5)
INSTANT_PSP = Psp()
SCENARIOS = ("intake", "burst", "sustained", "steady", "smallbox")
PLAN = {  # where each scenario runs
    "sqlite": ("intake", "burst", "smallbox"),
    "postgres": ("intake", "burst", "sustained", "steady"),
}


@dataclass(frozen=True)
class Config:
    quick: bool
    dbs: tuple[str, ...]
    scenarios: tuple[str, ...]
    intake_seconds: float
    burst: Load
    sustained: Load
    steady: Load
    smallbox: Load
    quiet_wait_seconds: float
    out: Path

    @classmethod
    def from_env(cls, quick: bool, out: Path) -> Config:
        env = os.environ

        def names(variable: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = env.get(variable, "")
            return tuple(x.strip() for x in raw.split(",") if x.strip()) or default

        long = 15.0 if quick else 60.0
        return cls(
            quick=quick,
            dbs=names("BENCH_DBS", ("sqlite", "postgres")),
            scenarios=names("BENCH_SCENARIOS", SCENARIOS),
            intake_seconds=4.0 if quick else 15.0,
            # 50 orders within 5 s; all fulfilled within 60 s of the first offer is the target
            burst=Load(rate=10.0, seconds=5.0, warmup=0.0, drain_seconds=60.0),
            sustained=Load(rate=10.0, seconds=20.0 if quick else 60.0, warmup=10.0, drain_seconds=30.0),
            steady=Load(rate=21.0, seconds=long, warmup=4.0, drain_seconds=20.0),
            smallbox=Load(rate=10.0, seconds=long, warmup=4.0, drain_seconds=20.0),
            # before each scenario, wait this long at most for the machine's other tenants to go quiet
            quiet_wait_seconds=float(env.get("BENCH_QUIET_WAIT", "10" if quick else "60")),
            out=out,
        )


# --- targets -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    op: str  # ">=", "<" or "<="
    value: float
    scaling: str = ""  # "latency" (x scale), "rate" (/ scale) or "" (fixed)

    def scaled(self, scale: float) -> float:
        if self.scaling == "latency":
            return self.value * scale
        if self.scaling == "rate":
            return self.value / scale
        return self.value

    def met(self, value: float, scale: float) -> bool:
        target = self.scaled(scale)
        return {">=": value >= target, "<": value < target, "<=": value <= target}[self.op]


TARGETS = [
    Target("burst_accepted", "burst: accepted of 50 (2.5 s PSP)", ">=", 50),
    Target("burst_accept_p95_ms", "burst: offer->accept p95 ms", "<", 2000),
    Target("burst_fulfilled_in_60s", "burst: fulfilled within 60 s of the offer", ">=", 50),
    Target("sustained_missed_accepts", "sustained 10/s (2.5 s PSP): not accepted in window", "<=", 0),
    Target("sustained_completed_per_s", "sustained: completed/s", ">=", 9.5),
    Target("sustained_backlog_growth", "sustained: backlog growth orders/s", "<", 0.5),
    Target("steady_completed_per_s", "steady (instant PSP): completed/s", ">=", 20, "rate"),
    Target("steady_accept_p95_ms", "steady: offer->accept p95 ms", "<", 1000, "latency"),
    Target("steady_fulfilled_p95_ms", "steady: offer->fulfilled p95 ms", "<", 2000, "latency"),
    Target("smallbox_completed_per_s", "small box (1 core, SQLite): completed/s", ">=", 9.5, "rate"),
    Target("smallbox_missed_accepts", "small box: not accepted in window", "<=", 0),
    Target("smallbox_backlog_growth", "small box: backlog growth orders/s", "<", 0.5, "rate"),
    Target("new_order_p99_ms", "/new_order p99 ms, c=8 (web alone)", "<", 50, "latency"),
    Target("tx_status_p95_ms", "/tx_status p95 ms while orders flow", "<", 20, "latency"),
    Target("peak_pss_mb", "web + worker + payout lane peak PSS MB", "<", 250),
]
BY_KEY = {t.key: t for t in TARGETS}
INFO = [  # figures shown without a target
    ("new_order_rps", "/new_order req/s, c=8"),
    ("sustained_accept_p95_ms", "sustained: offer->accept p95 ms"),
    ("sustained_fulfilled_p95_ms", "sustained: offer->fulfilled p95 ms"),
    ("sustained_psp_max_in_flight", "sustained: PSP calls in flight, most"),
    ("steady_offered_per_s", "steady: offered/s"),
    ("smallbox_offered_per_s", "small box: offered/s"),
    ("smallbox_accept_p95_ms", "small box: offer->accept p95 ms"),
    ("smallbox_fulfilled_p95_ms", "small box: offer->fulfilled p95 ms"),
    ("burst_last_fulfilled_s", "burst: last fulfilled, s after its offer"),
    ("peak_rss_mb", "web + worker + payout lane peak RSS MB"),
]


# --- running -------------------------------------------------------------------------------------------


def scale_now() -> tuple[float, float]:
    """(workload ms now, the scale of the CPU-bound targets)."""
    workload = python_speed_ms()
    return workload, max(1.0, workload / REFERENCE_WORKLOAD_MS)


def run_database(kind: str, config: Config, workdir: Path) -> dict[str, Any]:
    log(f"--- {kind} ---")
    db = Database(kind, workdir)
    memory = MemorySampler().start()
    logs = workdir / "logs" / kind
    result: dict[str, Any] = {"database": db.version(), "scenarios": {}}
    try:
        started = time.monotonic()
        prepare_template(db)
        log(f"{result['database']} migrated in {time.monotonic() - started:.1f} s")
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "intake": lambda: _intake(db, config, memory, logs),
            "burst": lambda: _offered(db, "burst", config.burst, SLOW_PSP, memory, logs),
            "sustained": lambda: _offered(db, "sustained", config.sustained, SLOW_PSP, memory, logs),
            "steady": lambda: _scaled(db, "steady", config.steady, memory, logs),
            "smallbox": lambda: _scaled(db, "smallbox", config.smallbox, memory, logs, pinned=True),
        }
        for name in PLAN[kind]:
            if name in config.scenarios:
                quiet = wait_for_quiet(config.quiet_wait_seconds)
                log(
                    f"{kind}: {name} (other load {quiet['others_cores']} cores, waited {quiet['waited_s']} s)"
                )
                result["scenarios"][name] = {"before": quiet, **runners[name]()}
    finally:
        result["memory_peak"] = memory.stop()
        result["memory_at_peak"] = memory.at_peak
        db.close()
    log(f"{kind} memory peak: {result['memory_peak']}")
    return result


def _intake(db: Database, config: Config, memory: MemorySampler, logs: Path) -> dict[str, Any]:
    workload, scale = scale_now()
    with deployed(db, "intake", INSTANT_PSP, memory, logs, with_worker=False) as deployment:
        figures = intake(deployment, concurrency=8, seconds=config.intake_seconds, warmup=1.0)
    return {"workload_ms": workload, "scale": scale, **figures}


def _offered(
    db: Database, name: str, offered: Load, psp: Psp, memory: MemorySampler, logs: Path
) -> dict[str, Any]:
    workload, scale = scale_now()
    with deployed(db, name, psp, memory, logs) as deployment:
        figures = offered_load(deployment, offered)
    return {"workload_ms": workload, "scale": scale, "psp_latency_s": psp.latency, **figures}


def _scaled(
    db: Database, name: str, offered: Load, memory: MemorySampler, logs: Path, *, pinned: bool = False
) -> dict[str, Any]:
    """An instant-PSP scenario whose offered rate scales with the machine's speed."""
    workload, scale = scale_now()
    load = Load(
        rate=round(offered.rate / scale, 2),
        seconds=offered.seconds,
        warmup=offered.warmup,
        drain_seconds=offered.drain_seconds,
    )
    prefix = ("taskset", "-c", "0") if pinned else ()
    with deployed(db, name, INSTANT_PSP, memory, logs, prefix=prefix) as deployment:
        if pinned:
            with bench_process_off_core(0):
                figures = offered_load(deployment, load, poll_tx_status=False)
        else:
            figures = offered_load(deployment, load)
    return {"workload_ms": workload, "scale": scale, "pinned_to_core": 0 if pinned else None, **figures}


# --- figures and report --------------------------------------------------------------------------------


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def figures(run: dict[str, Any]) -> dict[str, tuple[Any, float]]:
    """Each figure of one database's run with the scale of its targets: key -> (value, scale)."""
    s = run["scenarios"]

    def scale(name: str) -> float:
        return float(_get(s, name, "scale") or 1.0)

    def missed(name: str) -> int | None:
        if name not in s:
            return None
        return int(s[name]["offered"]) - int(s[name]["accepted"])

    tx_status = [_get(s, name, "tx_status", "latency_ms", "p95") for name in ("burst", "sustained", "steady")]
    tx_status_scale = max((scale(n) for n in ("burst", "sustained", "steady") if n in s), default=1.0)
    burst_max = _get(s, "burst", "offer_to_fulfilled_ms", "max")
    return {
        "burst_accepted": (_get(s, "burst", "accepted"), 1.0),
        "burst_accept_p95_ms": (_get(s, "burst", "offer_to_accept_ms", "p95"), 1.0),
        "burst_fulfilled_in_60s": (_get(s, "burst", "fulfilled_within_60s"), 1.0),
        "burst_last_fulfilled_s": (round(burst_max / 1000, 1) if burst_max is not None else None, 1.0),
        "sustained_missed_accepts": (missed("sustained"), 1.0),
        "sustained_completed_per_s": (_get(s, "sustained", "completed_per_s"), 1.0),
        "sustained_backlog_growth": (_get(s, "sustained", "backlog_growth_per_s"), 1.0),
        "sustained_accept_p95_ms": (_get(s, "sustained", "offer_to_accept_ms", "p95"), 1.0),
        "sustained_fulfilled_p95_ms": (_get(s, "sustained", "offer_to_fulfilled_ms", "p95"), 1.0),
        "sustained_psp_max_in_flight": (_get(s, "sustained", "psp", "max_in_flight"), 1.0),
        "steady_offered_per_s": (_get(s, "steady", "offered_rate"), 1.0),
        "steady_completed_per_s": (_get(s, "steady", "completed_per_s"), scale("steady")),
        "steady_accept_p95_ms": (_get(s, "steady", "offer_to_accept_ms", "p95"), scale("steady")),
        "steady_fulfilled_p95_ms": (_get(s, "steady", "offer_to_fulfilled_ms", "p95"), scale("steady")),
        "smallbox_offered_per_s": (_get(s, "smallbox", "offered_rate"), 1.0),
        "smallbox_completed_per_s": (_get(s, "smallbox", "completed_per_s"), scale("smallbox")),
        "smallbox_missed_accepts": (missed("smallbox"), 1.0),
        "smallbox_backlog_growth": (_get(s, "smallbox", "backlog_growth_per_s"), scale("smallbox")),
        "smallbox_accept_p95_ms": (_get(s, "smallbox", "offer_to_accept_ms", "p95"), 1.0),
        "smallbox_fulfilled_p95_ms": (_get(s, "smallbox", "offer_to_fulfilled_ms", "p95"), 1.0),
        "new_order_p99_ms": (_get(s, "intake", "latency_ms", "p99"), scale("intake")),
        "new_order_rps": (_get(s, "intake", "throughput_rps"), 1.0),
        "tx_status_p95_ms": (max((v for v in tx_status if v is not None), default=None), tx_status_scale),
        "peak_pss_mb": (_get(run, "memory_peak", "total_pss_mb"), 1.0),
        "peak_rss_mb": (_get(run, "memory_peak", "total_rss_mb"), 1.0),
    }


def verdicts(figs: dict[str, tuple[Any, float]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for target in TARGETS:
        value, scale = figs.get(target.key, (None, 1.0))
        if value is None:
            continue
        out[target.key] = {
            "value": value,
            "target": f"{target.op} {target.scaled(scale):g}",
            "scale": round(scale, 2),
            "met": target.met(float(value), scale),
        }
    return out


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    kinds = list(results["runs"])
    width = 52
    head = f"| {'figure':<{width}} | {'target':<8} | " + " | ".join(f"{k:<26}" for k in kinds) + " |"
    lines = [head, "|" + "-" * (width + 2) + "|----------|" + "|".join("-" * 28 for _ in kinds) + "|"]
    for target in TARGETS:
        cells = []
        for kind in kinds:
            verdict = results["verdicts"][kind].get(target.key)
            if verdict is None:
                cells.append("-")
                continue
            scaled = "" if target.scaling == "" else f" ({verdict['target']})"
            cells.append(f"{_number(verdict['value'])}{scaled} {'PASS' if verdict['met'] else 'MISS'}")
        base = f"{target.op} {target.value:g}" + ("*" if target.scaling else "")
        lines.append(
            f"| {target.label:<{width}} | {base:<8} | " + " | ".join(f"{c:<26}" for c in cells) + " |"
        )
    for key, label in INFO:
        cells = []
        for kind in kinds:
            value = results["figures"][kind].get(key, [None])[0]
            cells.append("-" if value is None else _number(value))
        lines.append(f"| {label:<{width}} | {'':<8} | " + " | ".join(f"{c:<26}" for c in cells) + " |")
    return "\n".join(lines)


def report(results: dict[str, Any]) -> None:
    info = results["machine"]
    out()
    out(table(results))
    out()
    out(
        "* scales with the machine: latency targets x max(1, workload/200 ms), rate targets / it "
        "(the scaled target in brackets)"
    )
    out(
        f"{results['command']} on {info['cores']} cores ({info['cpu']}), {info['memory_gb']} GB, "
        f"Python {info['python']}; "
        + ", ".join(run["database"] for run in results["runs"].values())
        + f"; {results['elapsed_s']} s; fixed Python workload {info['workload_ms_start']} ms at the start, "
        f"{info.get('workload_ms_end', '?')} ms at the end"
        + (f"; node settings added: {results['node_env']}" if results.get("node_env") else "")
    )
    for kind, run in results["runs"].items():
        loads = ", ".join(
            f"{name} {scenario.get('others_cores', scenario['before']['others_cores'])}"
            for name, scenario in run["scenarios"].items()
        )
        out(f"{kind}: the machine's other tenants used (cores, 2 = all) during {loads}")


@contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="provision-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the provision node")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--report", type=Path, help="print the table of an earlier run's JSON and exit")
    parser.add_argument("--keep-logs", type=Path, help="copy the node's logs here")
    args = parser.parse_args(argv)
    if args.report:
        report(json.loads(args.report.read_text()))
        return 0
    config = Config.from_env(args.quick, args.out)
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": "make bench" + (" (BENCH_QUICK=1)" if config.quick else ""),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine(), "workload_ms_start": python_speed_ms()},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in config.__dict__.items()},
        "node_env": extra_env(),
        "runs": {},
    }
    log(f"fixed Python workload: {results['machine']['workload_ms_start']} ms (reference 200 ms)")
    with _workdir() as workdir:
        try:
            for kind in config.dbs:
                if kind == "postgres" and not os.environ.get("TEST_DATABASE_URL"):
                    log(
                        "skipping PostgreSQL: TEST_DATABASE_URL is not set (make bench runs with-postgres.sh)"
                    )
                    continue
                results["runs"][kind] = run_database(kind, config, workdir)
        finally:
            if args.keep_logs:
                shutil.copytree(workdir / "logs", args.keep_logs, dirs_exist_ok=True)
    results["figures"] = {kind: figures(run) for kind, run in results["runs"].items()}
    results["verdicts"] = {kind: verdicts(figs) for kind, figs in results["figures"].items()}
    results["machine"]["workload_ms_end"] = python_speed_ms()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(results, indent=2, default=str))
    report(results)
    out(f"written to {config.out}")
    return 0
