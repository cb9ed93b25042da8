"""GET /metrics: Prometheus text exposition of the process's metrics plus figures read from the database.

Two sources, one answer:

* process metrics — django-prometheus (requests, latency, exceptions by view) and ``provision.metrics``
  (PSP and aggregator call durations, transitions, declines). With ``PROMETHEUS_MULTIPROC_DIR`` set (in
  the environment before the processes start) every gunicorn and qcluster process sharing that
  directory is aggregated (prometheus_client's multiprocess mode); without it, this process's own.
* database figures, read at scrape time by ``DatabaseCollector`` so every replica reports the same
  truth: orders by state, outbox depth and the oldest pending row's age, balances per currency,
  transfers by PSP and status, webhook signature failures (counted in ``WebhookRefusals``, not read from
  the sampled and purged webhook rows), PSP circuit breakers, the worker's last
  finished task.

Access: with ``METRICS_TOKEN`` set, ``Authorization: Bearer <token>`` (compared in constant time; a DRF
authentication class, so the scraper is rate-limited on a budget of its own).
Without it, nobody, unless ``METRICS_ALLOW_UNAUTHENTICATED=loopback`` (the default only with DEBUG):
then loopback clients (REMOTE_ADDR in 127.0.0.0/8 or ::1 — X-Forwarded-For is ignored). Loopback alone
proves little: a reverse proxy on the same host makes every client a loopback client.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import prometheus_client
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Max, Min
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from prometheus_client import multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4  # every Prometheus version reads it
from prometheus_client.registry import Collector, CollectorRegistry
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from provision import metrics as _node_metrics  # noqa: F401  (registers the node's own metrics)

logger = logging.getLogger(__name__)


def _age_seconds(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else max((now - then).total_seconds(), 0.0)


def worker_last_task_at() -> datetime | None:
    """When the django-q2 cluster last finished a task (success or failure), from the ORM broker's
    result table. The minute ``sweep`` schedule guarantees one a minute while a cluster runs."""
    from django_q.models import Task

    return Task.objects.aggregate(last=Max("stopped"))["last"]


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time (a handful of indexed GROUP BY queries)."""

    def describe(self) -> Iterable[Metric]:
        return []  # never touch the database when the collector is registered

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("provision_database_up", "1 when the scrape could read the database, else 0.")
        try:
            families = list(self._families())
        except DatabaseError:
            logger.exception("metrics.database_unavailable")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        from balances.models import Balance
        from orders.models import Order, OrderStatus, OutboxKind, OutboxMessage, OutboxStatus
        from psp.models import CircuitState, Transfer, TransferStatus, WebhookRefusals

        now = timezone.now()

        orders = GaugeMetricFamily("provision_orders", "Orders by state.", labels=["state"])
        by_state = dict(Order.objects.values_list("status").annotate(n=Count("pk")).order_by())
        for state in OrderStatus.values:
            orders.add_metric([state], by_state.get(state, 0))
        yield orders

        outbox = GaugeMetricFamily(
            "provision_outbox_messages",
            "Calls owed to the aggregator, by kind and delivery status.",
            labels=["kind", "status"],
        )
        outbox_rows = OutboxMessage.objects.values_list("kind", "status").annotate(n=Count("pk")).order_by()
        counts = {(kind, status): n for kind, status, n in outbox_rows}
        for kind in OutboxKind.values:
            for status in OutboxStatus.values:
                outbox.add_metric([kind, status], counts.get((kind, status), 0))
        yield outbox

        oldest = OutboxMessage.objects.filter(status=OutboxStatus.PENDING).aggregate(at=Min("created_at"))
        oldest_age = GaugeMetricFamily(
            "provision_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox row (0 when none is pending).",
        )
        oldest_age.add_metric([], _age_seconds(oldest["at"], now) or 0.0)
        yield oldest_age

        balance = GaugeMetricFamily(
            "provision_balance",
            "Balance per currency: total held, reserved for accepted orders, available to accept.",
            labels=["currency", "kind"],
        )
        stored = {row.currency: row for row in Balance.objects.all()}
        for currency in sorted(set(settings.CURRENCIES) | set(stored)):
            row = stored.get(currency)
            total = float(row.total) if row else 0.0
            reserved = float(row.reserved) if row else 0.0
            balance.add_metric([currency, "total"], total)
            balance.add_metric([currency, "reserved"], reserved)
            balance.add_metric([currency, "available"], total - reserved)
        yield balance

        from balances import selectors as balance_selectors

        drift = GaugeMetricFamily(
            "provision_balance_drift",
            "PSPs' balance readings (plus movements since) minus the ledger's total, per currency a PSP "
            "reported; not 0 until a staff user explains and books it.",
            labels=["currency"],
        )
        for currency, found in sorted(
            balance_selectors.balance_drifts(currencies=settings.CURRENCIES).items()
        ):
            drift.add_metric([currency], float(found.amount))
        yield drift

        transfers = GaugeMetricFamily(
            "provision_transfers", "Payout attempts by PSP and status.", labels=["psp", "status"]
        )
        transfer_rows = Transfer.objects.values_list("psp", "status").annotate(n=Count("pk")).order_by()
        counts = {(psp, status): n for psp, status, n in transfer_rows}
        for psp in sorted(set(settings.PSP) | {psp for psp, _ in counts}):
            for status in TransferStatus.values:
                transfers.add_metric([psp, status], counts.get((psp, status), 0))
        yield transfers

        failures = CounterMetricFamily(
            "provision_webhook_signature_failures",
            "Webhooks refused for a bad signature, by PSP (every one, stored as a sample or not).",
            labels=["psp"],
        )
        counts_by_psp = dict(WebhookRefusals.objects.values_list("psp", "total"))
        for psp in sorted(set(settings.PSP) | set(counts_by_psp)):
            failures.add_metric([psp], counts_by_psp.get(psp, 0))
        yield failures

        from psp import health as psp_health

        circuits = GaugeMetricFamily(
            "provision_psp_circuit_state",
            "1 for the current circuit-breaker state of each enabled PSP (closed, open, half_open).",
            labels=["psp", "state"],
        )
        accepting = GaugeMetricFamily(
            "provision_psp_takes_new_payouts",
            "1 when routing would send a new payout to the PSP (circuit and failure rate allow it).",
            labels=["psp"],
        )
        for name, health in sorted(psp_health.psp_health(psps=settings.PSP, now=now).items()):
            for value in CircuitState.values:
                circuits.add_metric([name, value], 1 if health.circuit == value else 0)
            accepting.add_metric([name], 1 if health.takes_new_payouts else 0)
        yield circuits
        yield accepting

        last_task_age = _age_seconds(worker_last_task_at(), now)
        if last_task_age is not None:
            worker = GaugeMetricFamily(
                "provision_worker_last_task_age_seconds",
                "Seconds since the django-q2 cluster last finished a task (absent: never).",
            )
            worker.add_metric([], last_task_age)
            yield worker


DATABASE_REGISTRY = CollectorRegistry(auto_describe=False)
DATABASE_REGISTRY.register(DatabaseCollector())


def process_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def render() -> bytes:
    return prometheus_client.generate_latest(process_registry()) + prometheus_client.generate_latest(
        DATABASE_REGISTRY
    )


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


_NEED_TOKEN = "Metrics need a bearer token"  # noqa: S105 - a message, not a secret


@dataclass(frozen=True)
class MetricsScraper:
    """A client that presented ``METRICS_TOKEN``. ``client_id`` gives it a rate-limit budget of its own
    (``provision.throttling`` counts authenticated clients by id), apart from anonymous callers that may
    share its address (every client of a reverse proxy on the same host)."""

    client_id: str = "metrics-scraper"
    is_authenticated: bool = True


class MetricsTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <METRICS_TOKEN>``, compared in constant time. A wrong token is refused
    before the throttle counts it; no header leaves the request anonymous (the view decides)."""

    def authenticate(self, request: Request) -> tuple[MetricsScraper, None] | None:
        token: str = settings.METRICS_TOKEN
        header = request.headers.get("Authorization", "")
        if not token or not header:
            return None
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8"), token.encode("utf-8")
        ):
            raise exceptions.NotAuthenticated(_NEED_TOKEN)
        return MetricsScraper(), None

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class MetricsApi(APIView):
    """``GET /metrics``, rate-limited in the ``metrics`` scope (per client IP; the scraper: its own)."""

    authentication_classes = [MetricsTokenAuthentication]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        if not isinstance(request.user, MetricsScraper):
            if settings.METRICS_TOKEN:
                raise exceptions.NotAuthenticated(_NEED_TOKEN)
            if settings.METRICS_ALLOW_UNAUTHENTICATED != "loopback":
                raise exceptions.PermissionDenied(
                    "Metrics need METRICS_TOKEN (or METRICS_ALLOW_UNAUTHENTICATED=loopback)", code="forbidden"
                )
            if not _is_loopback(str(request.META.get("REMOTE_ADDR") or "")):
                raise exceptions.PermissionDenied(
                    "Metrics are served to loopback clients only (set METRICS_TOKEN)", code="forbidden"
                )
        return HttpResponse(render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
