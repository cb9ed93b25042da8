"""GET /metrics: process metrics plus database figures read at scrape time; a bearer token, or loopback
clients when METRICS_ALLOW_UNAUTHENTICATED=loopback (the default only with DEBUG)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from balances import services as balance_services
from orders.models import OrderStatus, OutboxKind, OutboxMessage, OutboxStatus
from orders.services import outbox
from orders.tests.factories import OrderFactory
from psp.models import CircuitState, PspCircuit, Transfer, TransferStatus, WebhookEvent
from psp.services import webhooks as webhook_services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def loopback_opt_out(settings: Any) -> None:
    """Most tests here scrape from loopback without a token: the documented opt-out. Without DEBUG the
    default is off (tested below)."""
    settings.METRICS_ALLOW_UNAUTHENTICATED = "loopback"


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def scrape(client: Client, **extra: Any) -> Any:
    return client.get("/metrics", REMOTE_ADDR=extra.pop("REMOTE_ADDR", "127.0.0.1"), **extra)


def test_loopback_scrape_without_token_has_request_node_and_database_metrics(client: Client) -> None:
    response = scrape(client)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "django_http_requests_before_middlewares",
        "provision_psp_call_seconds",
        "provision_aggregator_call_seconds",
        "provision_order_transitions",
        "provision_database_up",
        "provision_orders",
        "provision_outbox_messages",
        "provision_outbox_oldest_pending_age_seconds",
        "provision_balance",
        "provision_transfers",
        "provision_webhook_signature_failures",
        "provision_psp_circuit_state",
        "provision_psp_takes_new_payouts",
    } <= names


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses_are_served_without_token(client: Client, address: str) -> None:
    assert scrape(client, REMOTE_ADDR=address).status_code == 200


def test_remote_client_is_refused_when_no_token_is_set(client: Client) -> None:
    response = scrape(client, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "message": "Metrics are served to loopback clients only (set METRICS_TOKEN)",
        "data": {"code": "forbidden"},
    }


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3"])
def test_without_a_token_or_the_opt_out_every_client_is_refused(
    client: Client, settings: Any, address: str
) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_UNAUTHENTICATED = "off"

    response = scrape(client, REMOTE_ADDR=address)

    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "message": "Metrics need METRICS_TOKEN (or METRICS_ALLOW_UNAUTHENTICATED=loopback)",
        "data": {"code": "forbidden"},
    }


def _metrics_access_in_a_fresh_process(**env: str) -> str:
    import subprocess
    import sys
    from pathlib import Path

    from provision.testing import subprocess_env

    script = "from django.conf import settings; print(settings.METRICS_ALLOW_UNAUTHENTICATED)"
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env=subprocess_env(DATABASE_URL="sqlite:////tmp/provision-metrics-access.sqlite3", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_loopback_is_trusted_by_default_only_with_debug() -> None:
    assert _metrics_access_in_a_fresh_process(DEBUG="false") == "off"
    assert _metrics_access_in_a_fresh_process(DEBUG="true") == "loopback"
    assert _metrics_access_in_a_fresh_process(METRICS_ALLOW_UNAUTHENTICATED="loopback") == "loopback"


def test_with_a_token_every_client_needs_the_bearer_token(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = "scrape-token-0123456789"

    missing = scrape(client)
    wrong = scrape(client, HTTP_AUTHORIZATION="Bearer scrape-token-0123456780")
    right = scrape(client, REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789")

    assert (missing.status_code, missing["WWW-Authenticate"]) == (401, "Bearer")
    assert wrong.status_code == 401
    assert right.status_code == 200


def test_database_figures_are_read_at_scrape_time(client: Client, settings: Any) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    paying = OrderFactory.create()
    OrderFactory.create()
    from orders import services as order_services

    order_services.order_decide(order_pk=paying.pk)  # reserves 3750
    Transfer.objects.create(
        order=paying, psp="sandbox", reference="SBX-1", amount=Decimal("3750"), currency="NGN"
    )
    Transfer.objects.filter(reference="SBX-1").update(status=TransferStatus.PENDING)
    pending = outbox.outbox_enqueue(
        kind=OutboxKind.CANCEL, dedupe_key="cancel:x", path="orders/x/cancel", payload={}, order=paying
    )
    OutboxMessage.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(seconds=90))
    outbox.outbox_enqueue(
        kind=OutboxKind.DECLINE, dedupe_key="decline:y", path="orders/y/decline", payload={}, order=None
    )
    OutboxMessage.objects.filter(dedupe_key="decline:y").update(status=OutboxStatus.DELIVERED)
    for body in (b"bad-1", b"bad-2"):
        webhook_services.webhook_refusal_record(psp="sandbox", body=body)
    WebhookEvent.objects.create(psp="sandbox", event_id="good", body="{}", signature_valid=True)
    WebhookEvent.objects.filter(signature_valid=False).delete()  # purged samples still count
    PspCircuit.objects.create(psp="sandbox", state=CircuitState.OPEN, opened_at=timezone.now())

    values = samples(scrape(client).content)

    assert values[("provision_database_up", ())] == 1
    assert values[("provision_orders", (("state", OrderStatus.ACCEPTING),))] == 1
    assert values[("provision_orders", (("state", OrderStatus.RECEIVED),))] == 1
    assert values[("provision_orders", (("state", OrderStatus.FULFILLED),))] == 0
    assert values[("provision_outbox_messages", (("kind", "cancel"), ("status", "pending")))] == 1
    assert values[("provision_outbox_messages", (("kind", "decline"), ("status", "delivered")))] == 1
    assert values[("provision_outbox_messages", (("kind", "fulfil"), ("status", "pending")))] == 0
    assert 90 <= values[("provision_outbox_oldest_pending_age_seconds", ())] < 120
    assert values[("provision_balance", (("currency", "NGN"), ("kind", "total")))] == 100000
    assert values[("provision_balance", (("currency", "NGN"), ("kind", "reserved")))] == 3750
    assert values[("provision_balance", (("currency", "NGN"), ("kind", "available")))] == 96250
    assert values[("provision_balance", (("currency", "KES"), ("kind", "total")))] == 0
    assert values[("provision_transfers", (("psp", "sandbox"), ("status", "pending")))] == 1
    assert values[("provision_transfers", (("psp", "sandbox"), ("status", "succeeded")))] == 0
    assert values[("provision_webhook_signature_failures_total", (("psp", "sandbox"),))] == 2
    assert values[("provision_psp_circuit_state", (("psp", "sandbox"), ("state", "open")))] == 1
    assert values[("provision_psp_circuit_state", (("psp", "sandbox"), ("state", "closed")))] == 0
    assert values[("provision_psp_takes_new_payouts", (("psp", "sandbox"),))] == 0


def test_no_pending_outbox_row_reads_as_zero_age_and_no_worker_task_as_absent(client: Client) -> None:
    values = samples(scrape(client).content)

    assert values[("provision_outbox_oldest_pending_age_seconds", ())] == 0
    assert not any(name == "provision_worker_last_task_age_seconds" for name, _ in values)


def test_worker_last_task_age_comes_from_the_task_results(client: Client) -> None:
    from django_q.models import Success

    Success.objects.create(
        id="a" * 32,
        name="sweep",
        func="orders.tasks.sweep",
        started=timezone.now() - timedelta(seconds=45),
        stopped=timezone.now() - timedelta(seconds=40),
        success=True,
    )

    values = samples(scrape(client).content)

    assert 40 <= values[("provision_worker_last_task_age_seconds", ())] < 60


def test_unreachable_database_is_reported_not_raised(client: Client, monkeypatch: Any) -> None:
    from django.db import OperationalError

    from provision import metrics_export

    def broken(self: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(metrics_export.DatabaseCollector, "_families", broken)

    response = scrape(client)

    assert response.status_code == 200
    values = samples(response.content)
    assert values[("provision_database_up", ())] == 0
    assert not any(name == "provision_orders" for name, _ in values)


def test_metrics_of_other_processes_sharing_the_multiprocess_directory_are_summed(
    client: Client, tmp_path: Any, monkeypatch: Any
) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        "PATH": os.environ.get("PATH", ""),
        "PROVISION_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "provision.settings.test",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    for _ in range(2):  # two worker processes, each with its own file
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); from provision import metrics; "
                "metrics.psp_call(psp='sandbox', operation='transfer_create', outcome='ok', seconds=0.2)",
            ],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            check=True,
            timeout=60,
        )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    values = samples(scrape(client).content)

    labels = (("operation", "transfer_create"), ("outcome", "ok"), ("psp", "sandbox"))
    assert values[("provision_psp_call_seconds_count", labels)] == 2
    assert values[("provision_psp_call_seconds_sum", labels)] == pytest.approx(0.4)
    files = sorted(path.name for path in tmp_path.iterdir())
    assert len(files) == 2
    assert all(re.fullmatch(r"histogram_[A-Za-z0-9.-]+-\d+\.db", name) for name in files)
