"""The scenarios of ``make bench``. Each starts the node as deployed (gunicorn, the django-q2 worker and the
payout lane: ``devtools.processes.run_node``) on a fresh copy of the migrated database, with the project's
aggregator simulator as the aggregator (accept window ``ACCEPT_WINDOW_SECONDS``) and a PSP, offers orders
the way the aggregator does, and returns what it measured:

* ``intake``: the web alone (worker and lane stopped), signed ``POST /new_order`` from 8 clients back to
  back: latency percentiles;
* ``offered_load``: orders offered at a fixed rate for a fixed time (a burst is 10/s for 5 s), then a
  bounded drain: how many were accepted in their window, completions per second in the steady window,
  offer->accept and offer->fulfilled percentiles, the backlog (orders offered and not yet settled) sampled
  every second and its growth, ``/tx_status`` latency while orders flow, and the node's own account
  (orders by status, transfers and debits per order). The PSP is the in-database sandbox (instant) or the
  ``PspSimulator`` over real HTTP through the node's Lenco adapter (seconds per payout call).
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import load
from bench.node import (
    ACCEPT_WINDOW_SECONDS,
    ACCOUNT,
    CLIENT_ID,
    FUNDS,
    SECRET,
    Database,
    MemorySampler,
    Probe,
    log,
    machine_busy_seconds,
    node_env,
    pin_this_process,
    sandbox_psp,
)
from devtools.aggregator_sim import AggregatorSimulator
from devtools.processes import NodeProcesses, cpu_seconds, run_node, tree_cpu_seconds
from devtools.psp_sim import PspSimulator

AMOUNT = "5000"
STARTUP_TIMEOUT = 60.0
# BENCH_AGGREGATOR_DELAY: seconds every aggregator answer takes (0: the simulator answers at once, as in
# the reported runs); e.g. 0.2 for an aggregator a continent away.
AGGREGATOR_DELAY_SECONDS = float(os.environ.get("BENCH_AGGREGATOR_DELAY", "0"))


@dataclass(frozen=True)
class Psp:
    """The PSP of a scenario: ``latency`` 0 is the in-database sandbox, otherwise the Lenco simulator with
    ``latency`` seconds per payout POST and ``read_latency`` per read."""

    latency: float = 0.0
    read_latency: float = 0.0

    @property
    def slow(self) -> bool:
        return self.latency > 0


@dataclass
class Deployment:
    """One scenario's node: its database copy, its aggregator and PSP simulators, its processes."""

    node: NodeProcesses
    probe: Probe
    aggregator: AggregatorSimulator
    psp: PspSimulator | None


@contextmanager
def deployed(
    db: Database,
    name: str,
    psp: Psp,
    memory: MemorySampler,
    log_dir: Path,
    *,
    with_worker: bool = True,
    prefix: tuple[str, ...] = (),
) -> Iterator[Deployment]:
    """The node on a fresh database, running and funded (the template's opening balance)."""
    probe = db.fresh(name)
    aggregator = AggregatorSimulator(
        client_id=CLIENT_ID,
        secret=SECRET,
        validity_seconds=ACCEPT_WINDOW_SECONDS,
        tx_status_after=3600,
        answer_delay_seconds=AGGREGATOR_DELAY_SECONDS,
    ).start()
    psp_sim = None
    if psp.slow:
        psp_sim = PspSimulator(
            api_key="bench-lenco-key-7c2e9a41d3f0",
            latency=psp.latency,
            read_latency=psp.read_latency,
            balance=FUNDS,
        ).start()
    psp_env = psp_sim.node_env() if psp_sim else sandbox_psp()
    env = node_env(probe.url, aggregator.base_url, psp_env)
    try:
        with run_node(env, log_dir / name, with_worker=with_worker, prefix=prefix) as node:
            aggregator.node_url = node.url
            memory.watch("web", node.web.pid)
            memory.watch("worker", node.worker.pid if node.worker else None)
            try:
                if with_worker:
                    _wait_funded(probe, node)
                yield Deployment(node=node, probe=probe, aggregator=aggregator, psp=psp_sim)
            finally:
                for role in ("web", "worker"):
                    memory.watch(role, None)
    finally:
        aggregator.stop()
        if psp_sim is not None:
            psp_sim.stop()
        probe.close()


def _wait_funded(probe: Probe, node: NodeProcesses) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while probe.available() <= 0:
        for process in node.workers():
            if process.poll() is not None:
                raise RuntimeError(f"a node process exited (see {node.log_dir})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the node has no funds to accept with (see {node.log_dir})")
        time.sleep(0.1)


# --- intake -------------------------------------------------------------------------------------------


def intake(deployment: Deployment, *, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Signed ``POST /new_order`` from ``concurrency`` clients back to back (the web alone)."""
    parts = urlsplit(deployment.node.url)
    result = load.closed_loop(
        name="new_order",
        host=parts.hostname or "127.0.0.1",
        port=int(parts.port or 80),
        factory=load.new_order_factory(SECRET),
        concurrency=concurrency,
        duration=seconds,
        warmup=warmup,
        max_requests=100_000,
        prebuilt=int(1500 * (seconds + warmup)),  # signed before the clock starts (the aggregator signs)
    )
    figures = result.as_dict()
    latency = figures["latency_ms"]
    log(
        f"intake c={concurrency}: {result.throughput:.0f} req/s, p50 {latency['p50']} ms, "
        f"p95 {latency['p95']} ms, p99 {latency['p99']} ms, errors {result.errors}"
    )
    return figures


# --- /tx_status while orders flow ---------------------------------------------------------------------


class TxStatusPoller:
    """The aggregator's /tx_status task, compressed in time: every second, ask sequentially about up to
    ``batch`` orders the aggregator has accepted (case 2, with psp and txId, once a fulfilment is known),
    over one kept-alive connection. The answers are not applied to the simulator."""

    def __init__(self, aggregator: AggregatorSimulator, url: str, batch: int = 20) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", int(parts.port or 80)
        self.aggregator = aggregator
        self.batch = batch
        self.ids: list[str] = []
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-tx-status", daemon=True)
        self._random = random.Random(8)  # noqa: S311

    def start(self) -> TxStatusPoller:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(15)
        return {"latency_ms": load.summarise_ms(self.latencies), "status_counts": dict(self.statuses)}

    def _run(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        while not self._stop.wait(1.0):
            candidates = list(self.ids[-200:])
            self._random.shuffle(candidates)
            asked = 0
            for order_id in candidates:
                if asked >= self.batch or self._stop.is_set():
                    break
                snapshot = self.aggregator.order(order_id)
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
                self.statuses[str(status)] += 1
        connection.close()


# --- offered load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """``rate`` orders per second for ``seconds``; completions are counted from ``warmup`` seconds after
    the first offer (the pipeline is full by then) to the last offer; the drain waits at most
    ``drain_seconds`` after the last offer for every order to settle."""

    rate: float
    seconds: float
    warmup: float
    drain_seconds: float


def offered_load(deployment: Deployment, offered: Load, *, poll_tx_status: bool = True) -> dict[str, Any]:
    aggregator = deployment.aggregator
    poller = TxStatusPoller(aggregator, deployment.node.url).start() if poll_tx_status else None
    total = round(offered.rate * offered.seconds)
    ids: list[str] = []
    pending: set[str] = set()
    backlog: list[tuple[float, int]] = []
    if poller is not None:
        poller.ids = ids
    if deployment.psp is not None:
        deployment.psp.reset_stats()
    cpu_before = cpu_split(deployment)
    t0 = time.monotonic()
    next_sample = t0
    for i in range(total):
        _sleep_until(t0 + i / offered.rate)
        order_id = aggregator.offer(
            AMOUNT, currency="NGN", institution="ABNGNGLA", account_identifier=ACCOUNT, block=False
        ).id
        ids.append(order_id)
        pending.add(order_id)
        if time.monotonic() >= next_sample:
            pending = aggregator.unsettled(pending)
            backlog.append((time.monotonic() - t0, len(pending)))
            next_sample += 1.0
    offered_for = time.monotonic() - t0
    drain_deadline = time.monotonic() + offered.drain_seconds
    while pending and time.monotonic() < drain_deadline:
        pending = aggregator.unsettled(pending)
        time.sleep(0.2)
    drained_after = time.monotonic() - t0 - offered_for
    cpu = {party: used - cpu_before[party] for party, used in cpu_split(deployment).items()}
    wall = time.monotonic() - t0
    tx_status = poller.stop() if poller is not None else None
    orders = [aggregator.order(order_id) for order_id in ids]
    window = (t0 + min(offered.warmup, offered.seconds / 2), t0 + offered.seconds)
    completed = sum(
        1 for o in orders if o.validated_mono is not None and window[0] <= o.validated_mono <= window[1]
    )
    # The backlog's growth once the pipeline is full: a node that keeps up holds it level.
    settled_part = [p for p in backlog if p[0] >= max(offered.warmup, offered.seconds / 2)]
    result: dict[str, Any] = {
        "offered_rate": offered.rate,
        "offered": len(ids),
        "offered_for_s": round(offered_for, 2),
        "accepted": sum(1 for o in orders if o.accepted_mono is not None),
        "completed": sum(1 for o in orders if o.validated_mono is not None),
        "completed_per_s": round(completed / (window[1] - window[0]), 2),
        "fulfilled_within_60s": sum(
            1 for o in orders if o.offer_to_validated_ms is not None and o.offer_to_validated_ms <= 60_000
        ),
        "outcomes": dict(Counter(o.state for o in orders)),
        "refused_offers": sum(1 for o in orders if o.notify_ok is False),
        "backlog_samples": backlog,
        "backlog_growth_per_s": round(_slope(settled_part), 2),
        "not_settled_after_drain": len(pending),
        "drain_s": round(drained_after, 2),
        "offer_to_accept_ms": load.summarise_ms(_values(orders, "offer_to_accept_ms")),
        "offer_to_fulfilled_ms": load.summarise_ms(_values(orders, "offer_to_validated_ms")),
        "new_order_answer_ms": load.summarise_ms([o.notify_ms for o in orders if o.notify_ms is not None]),
        # CPU per offered order (offering and draining included) of everything sharing the machine's cores;
        # "others" is what the rest of the machine used meanwhile (a shared machine's other tenants).
        "cpu_ms_per_order": {
            party: round(seconds * 1000 / max(len(ids), 1), 1) for party, seconds in cpu.items()
        },
        "cores_busy": round(cpu["machine"] / (wall * (os.cpu_count() or 1)), 2),
        "others_cores": round(cpu["others"] / wall, 2),
        "node": deployment.probe.summary(),
        "aggregator_calls_per_order": _calls_per_order(aggregator, len(ids)),
        "violations": [f"{v.kind}: {v.detail}" for v in aggregator.violations()][:20],
    }
    if tx_status is not None:
        result["tx_status"] = tx_status
    if deployment.psp is not None:
        result["psp"] = _psp_stats(deployment.psp)
    log(
        f"{len(ids)} orders at {offered.rate:g}/s: accepted {result['accepted']}, completed "
        f"{result['completed']} ({result['completed_per_s']}/s in the window), accept p95 "
        f"{result['offer_to_accept_ms']['p95']} ms, fulfilled p95 "
        f"{result['offer_to_fulfilled_ms']['p95']} ms, max {result['offer_to_fulfilled_ms']['max']} ms, "
        f"backlog growth {result['backlog_growth_per_s']}/s, "
        f"outcomes {result['outcomes']}"
        + (f", tx_status p95 {tx_status['latency_ms']['p95']} ms" if tx_status else "")
        + (f", PSP max in flight {result['psp']['max_in_flight']}" if "psp" in result else "")
        + f"; CPU ms/order {result['cpu_ms_per_order']}, cores busy {result['cores_busy']:.0%}"
    )
    return result


def _calls_per_order(aggregator: AggregatorSimulator, orders: int) -> dict[str, float]:
    """The node's calls to the aggregator per offered order, by kind (accept, fulfil, balances, ...)."""
    calls: Counter[str] = Counter()
    for event in aggregator.events(direction="in"):
        parts = [p for p in event.path.split("/") if p]
        kind = parts[-1] if parts and parts[-1] in ("accept", "decline", "fulfill", "cancel") else event.path
        calls[f"{event.method} {kind}"] += 1
    return {kind: round(n / max(orders, 1), 2) for kind, n in calls.most_common()}


def cpu_split(deployment: Deployment) -> dict[str, float]:
    """CPU seconds so far of each party on the machine: the node's process trees, the database server's
    backends serving this scenario's database, this process (load generator, simulators, /tx_status
    poller), the whole machine (every core's busy time, whoever used it) and the rest of it (``others``:
    on a shared machine, its other tenants)."""
    node = deployment.node
    database = urlsplit(deployment.probe.url).path.strip("/")
    parts = {
        "web": tree_cpu_seconds(node.web.pid),
        "worker": tree_cpu_seconds(node.worker.pid) if node.worker else 0.0,
        "database": cpu_seconds(_backends(database)) if deployment.probe.kind == "postgres" else 0.0,
        "bench": time.process_time(),
    }
    machine = machine_busy_seconds()
    return {**parts, "machine": machine, "others": machine - sum(parts.values())}


def _backends(database: str) -> list[int]:
    """The PostgreSQL backends connected to ``database`` now (their process title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                pids.append(int(entry.name))
    return pids


def _psp_stats(psp: PspSimulator) -> dict[str, Any]:
    stats = psp.stats()
    return {
        "posts": stats.posts,
        "duplicates": stats.duplicates,
        "transfer_reads": stats.transfer_reads,
        "max_in_flight": stats.max_in_flight,
        "timings_ms": {
            kind: {k: round(v, 1) for k, v in asdict(t).items()} for kind, t in stats.timings.items()
        },
    }


def _values(orders: list[Any], attr: str) -> list[float]:
    return [v for v in (getattr(o, attr) for o in orders) if v is not None]


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, orders): orders per second."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_x) ** 2 for p in points)
    if var == 0:
        return 0.0
    return sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / var


@contextmanager
def bench_process_off_core(core: int) -> Iterator[None]:
    """The load generator and simulators off ``core`` while the node runs pinned to it (the small box is
    the node alone; the aggregator is elsewhere)."""
    everything = os.sched_getaffinity(0)
    others = everything - {core}
    if others:
        pin_this_process(others)
    try:
        yield
    finally:
        pin_this_process(everything)
