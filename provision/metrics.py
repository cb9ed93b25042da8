"""The node's own Prometheus metrics. Code that does the work calls these; /metrics exposes them.

Counters and histograms are process-local (each gunicorn/qcluster process exposes its own; Prometheus
sums them). Figures that live in the database (orders by state, outbox depth, balances) are read at
scrape time instead, so every process reports the same truth.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PSP_CALL_SECONDS = Histogram(
    "provision_psp_call_seconds",
    "Duration of calls to a PSP, by PSP, operation and outcome.",
    ["psp", "operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
AGGREGATOR_CALL_SECONDS = Histogram(
    "provision_aggregator_call_seconds",
    "Duration of calls to the aggregator, by call and outcome.",
    ["call", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
ORDER_TRANSITIONS = Counter(
    "provision_order_transitions_total",
    "Order state transitions, by transition and target state.",
    ["transition", "target"],
)
ORDER_DECLINES = Counter("provision_order_declines_total", "Declined offers, by reason.", ["reason"])
WEBHOOKS = Counter(
    "provision_webhooks_total", "PSP webhooks received, by PSP and outcome.", ["psp", "outcome"]
)


def psp_call(*, psp: str, operation: str, outcome: str, seconds: float) -> None:
    """Record one PSP call: ``outcome`` is ok, rejected, unavailable or error."""
    PSP_CALL_SECONDS.labels(psp=psp, operation=operation, outcome=outcome).observe(seconds)


def aggregator_call(*, call: str, outcome: str, seconds: float) -> None:
    AGGREGATOR_CALL_SECONDS.labels(call=call, outcome=outcome).observe(seconds)
