"""Closed-loop HTTP load on loopback: ``concurrency`` threads, each with its own keep-alive connection.

Bounded in time and in count; stops by itself. The client is ``http.client`` (stdlib, keep-alive) rather
than ``requests``: on a 2-core machine the load generator shares the CPU with the node, and ``requests``
costs several times more CPU per request, which would lower every figure.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provision import canonical_json, signing

# A request: (path, body, headers)
Request = tuple[str, bytes, dict[str, str]]
RequestFactory = Callable[[], Request]

GO_HEADERS = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def summarise_ms(values: list[float]) -> dict[str, float | int | None]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values) if values else None),
    }


@dataclass
class LoadResult:
    name: str
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    status_counts: dict[str, int]
    latencies_ms: list[float] = field(repr=False)

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "errors": self.errors,
            "status_counts": self.status_counts,
            "throughput_rps": round(self.throughput, 1),
            "latency_ms": summarise_ms(self.latencies_ms),
        }


def post(connection: http.client.HTTPConnection, request: Request) -> tuple[int, http.client.HTTPConnection]:
    """POST one request on a kept-alive connection: (status, the connection to use next). A failure is
    status 0, and the connection is replaced by a fresh one to the same server."""
    path, body, headers = request
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, connection
    except (OSError, http.client.HTTPException):
        connection.close()
        return 0, http.client.HTTPConnection(connection.host, connection.port, timeout=connection.timeout)


def closed_loop(
    *,
    name: str,
    host: str,
    port: int,
    factory: RequestFactory,
    concurrency: int,
    duration: float,
    warmup: float = 0.5,
    max_requests: int = 50_000,
    ok_statuses: tuple[int, ...] = (200, 201),
    timeout: float = 10.0,
    prebuilt: int = 10_000,
) -> LoadResult:
    """Run ``concurrency`` clients back to back for ``warmup + duration`` seconds (or ``max_requests``).

    Only requests that *start* after the warm-up and finish before the end are measured. The requests are
    built (and signed) before the clock starts, up to ``prebuilt`` of them: an aggregator signs on its own
    machine, so the signing must not compete with the node for this machine's CPU or the clients' GIL.
    """
    pool = [factory() for _ in range(min(max_requests, prebuilt))]
    pool.reverse()  # popped from the end, in the order they were built
    started = time.monotonic()
    measure_from = started + warmup
    stop_at = measure_from + duration
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counters = {"sent": 0, "errors": 0}

    def client() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        local_lat: list[float] = []
        local_status: dict[str, int] = {}
        errors = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            with lock:
                if counters["sent"] >= max_requests:
                    break
                counters["sent"] += 1
                prepared = pool.pop() if pool else None
            request = prepared or factory()
            begin = time.perf_counter()
            measured = time.monotonic() >= measure_from
            status, connection = post(connection, request)
            elapsed_ms = (time.perf_counter() - begin) * 1000
            if measured and time.monotonic() <= stop_at:
                local_lat.append(elapsed_ms)
                local_status[str(status)] = local_status.get(str(status), 0) + 1
                if status not in ok_statuses:
                    errors += 1
        connection.close()
        with lock:
            latencies.extend(local_lat)
            for key, value in local_status.items():
                statuses[key] = statuses.get(key, 0) + value
            counters["errors"] += errors

    threads = [threading.Thread(target=client, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=warmup + duration + timeout + 5)
    measured_for = min(time.monotonic(), stop_at) - measure_from
    return LoadResult(
        name=name,
        concurrency=concurrency,
        duration_s=max(measured_for, 1e-9),
        requests=len(latencies),
        errors=counters["errors"],
        status_counts=statuses,
        latencies_ms=latencies,
    )


# --- request factories -------------------------------------------------------------------------------------


def new_order_factory(secret: str, amount: str = "5000") -> RequestFactory:
    """POST /new_order exactly as the Go aggregator sends it: canonical body, X-Request-Signature."""

    def make() -> Request:
        body = canonical_json.go_dumps(
            {"amount": amount, "currency": "NGN", "institution": "ABNGNGLA", "orderId": str(uuid.uuid4())}
        )
        return "/new_order", body, {**GO_HEADERS, "X-Request-Signature": signing.sign(secret, body)}

    return make


def tx_status_request(secret: str, order_id: str, psp: str = "", tx_id: str = "") -> Request:
    """POST /tx_status like the fork's task: case 1 without psp/txId, case 2 with them."""
    payload = {"currency": "NGN", "orderId": order_id}
    if tx_id:
        payload.update({"psp": psp, "txId": tx_id})
    body = canonical_json.go_dumps(payload)
    return "/tx_status", body, {**GO_HEADERS, "X-Request-Signature": signing.sign(secret, body)}
