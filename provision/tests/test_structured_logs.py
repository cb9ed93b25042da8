"""Logs are JSON lines with the correlation id on each, and never show account numbers or secrets."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from django.conf import settings
from django.test import Client
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from balances import services as balance_services
from orders import services as order_services
from orders import workflow
from orders.models import Order, OrderStatus
from orders.services import delivery
from provision import canonical_json, request_context, signing, task_context
from provision import logging as provision_logging
from provision.testing import subprocess_env
from psp.models import Transfer

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "0123456789"
HEX_SIGNATURE = re.compile(r"\b[0-9a-f]{64}\b")

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above, rendered by the production JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(provision_logging.build_formatter("json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def log_lines(log_output: io.StringIO) -> Lines:
    return lambda: [json.loads(line) for line in log_output.getvalue().splitlines()]


@pytest.fixture
def bound_request_id() -> Iterator[str]:
    token = request_context.set_request_id("test-request-0001")
    yield "test-request-0001"
    request_context.reset_request_id(token)


def test_stdlib_log_call_comes_out_as_one_json_line_with_extra_fields_and_request_id(
    log_lines: Lines, bound_request_id: str
) -> None:
    logging.getLogger("orders.services").info(
        "order.received", extra={"order_id": "ord-1", "flavour": "seed"}
    )

    [line] = log_lines()
    assert {key: line[key] for key in ("event", "level", "logger", "order_id", "flavour", "request_id")} == {
        "event": "order.received",
        "level": "info",
        "logger": "orders.services",
        "order_id": "ord-1",
        "flavour": "seed",
        "request_id": "test-request-0001",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])


def test_structlog_logger_goes_through_the_same_chain(log_lines: Lines, bound_request_id: str) -> None:
    structlog.get_logger("provision.example").warning("node.paused", account=ACCOUNT)

    [line] = log_lines()
    assert (line["event"], line["level"], line["account"], line["request_id"]) == (
        "node.paused",
        "warning",
        "******6789",
        "test-request-0001",
    )


@pytest.mark.parametrize(
    "key", ["account", "account_identifier", "accountIdentifier", "accountNumber", "phone", "msisdn"]
)
def test_account_like_keys_keep_only_the_last_four_digits(log_lines: Lines, key: str) -> None:
    logging.getLogger("psp").info("payout.recipient", extra={key: ACCOUNT, "nested": {key: ACCOUNT}})

    [line] = log_lines()
    assert (line[key], line["nested"][key]) == ("******6789", "******6789")


@pytest.mark.parametrize(
    "key",
    [
        "webhook_secret",
        "X-Request-Signature",
        "signature_prefix",
        "Authorization",
        "api_key",
        "apiKey",
        "access_token",
        "password",
    ],
)
def test_secret_named_keys_are_dropped(log_lines: Lines, key: str) -> None:
    logging.getLogger("psp").info("psp.call", extra={key: "hidden-value-123", "nested": {key: "x"}})

    [line] = log_lines()
    assert key not in line
    assert line["nested"] == {}
    assert "hidden-value-123" not in json.dumps(line)


def test_configured_secret_values_are_blanked_wherever_they_appear(log_output: io.StringIO) -> None:
    secret = settings.AGGREGATOR_SECRET_KEY

    try:
        raise ValueError(f"could not sign with {secret}")
    except ValueError:
        logging.getLogger("orders").exception("outbox.crashed", extra={"detail": f"key={secret}"})

    text = log_output.getvalue()
    assert secret not in text
    line = json.loads(text)
    assert line["detail"] == "key=[REDACTED]"
    assert "could not sign with [REDACTED]" in line["exception"]


def test_a_request_logs_its_id_on_every_line_and_echoes_it(
    client: Client, log_lines: Lines, db: None
) -> None:
    response = client.get("/info", HTTP_X_REQUEST_ID="aggregator-req-42")

    assert response["X-Request-ID"] == "aggregator-req-42"
    [line] = [line for line in log_lines() if line["event"] == "http.request"]
    assert {key: line[key] for key in ("method", "path", "status", "request_id")} == {
        "method": "GET",
        "path": "/info",
        "status": 200,
        "request_id": "aggregator-req-42",
    }


def task_that_logs(*, note: str) -> str:
    logging.getLogger("provision.tests").info("task.ran", extra={"note": note})
    return request_context.get_request_id()


def test_a_task_logs_the_request_id_of_the_request_that_enqueued_it(
    log_lines: Lines, bound_request_id: str, db: None
) -> None:
    from django_q.tasks import async_task  # sync mode in tests: runs here, through the worker code

    async_task("provision.tests.test_structured_logs.task_that_logs", note="n1", task_name="log-probe")

    [line] = [line for line in log_lines() if line["event"] == "task.ran"]
    assert (line["request_id"], line["task"], line["note"]) == ("test-request-0001", "log-probe", "n1")
    assert request_context.get_request_id() == "test-request-0001"
    assert "task" not in structlog.contextvars.get_contextvars()


def test_the_enqueued_package_carries_the_id_and_the_worker_restores_it() -> None:
    package: dict[str, Any] = {"name": "outbox", "func": "orders.tasks.outbox_deliver_due"}
    token = request_context.set_request_id("enqueuing-request-7")
    task_context.on_pre_enqueue(sender="django_q", task=package)
    request_context.reset_request_id(token)

    task_context.on_pre_execute(sender="django_q", task=package)
    inside = request_context.get_request_id()
    task_context.on_post_execute(sender="django_q", task=package)

    assert package["request_id"] == "enqueuing-request-7"
    assert inside == "enqueuing-request-7"
    assert request_context.get_request_id() == "-"


def test_a_scheduled_task_without_an_id_runs_with_a_fresh_one() -> None:
    package: dict[str, Any] = {"name": "sweep", "func": "orders.tasks.sweep"}
    task_context.on_pre_enqueue(sender="django_q", task=package)  # the scheduler has no request

    task_context.on_pre_execute(sender="django_q", task=package)
    inside = request_context.get_request_id()
    task_context.on_post_execute(sender="django_q", task=package)

    assert "request_id" not in package
    assert re.fullmatch(r"[0-9a-f]{32}", inside)


@pytest.mark.django_db
def test_full_order_flow_logs_no_account_number_no_secret_and_no_signature(
    client: Client, log_output: io.StringIO, httpserver: HTTPServer, settings: Any
) -> None:
    settings.AGGREGATOR_BASE_URL = httpserver.url_for("").rstrip("/")
    outbound_signatures: list[str] = []
    outbound_request_ids: list[str] = []

    def aggregator(request: Request) -> Response:
        outbound_signatures.append(request.headers["Authorization"].rpartition(":")[2])
        outbound_request_ids.append(request.headers.get("X-Request-ID", ""))
        data: Any = None
        if request.path.endswith("/accept"):
            data = {"id": order_id, "amount": "3750", "institution": "ABNGNGLA", "accountIdentifier": ACCOUNT}
            data |= {"accountName": "Ada Obi", "memo": "invoice 42", "metadata": None}
        status = 201 if data else 200
        body = {"status": "success", "message": "ok", "data": data}
        return Response(json.dumps(body), status=status, content_type="application/json")

    httpserver.expect_request(re.compile(r"/v1/provider/.*"), method="POST").respond_with_handler(aggregator)
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    order_id = "5b1f0a52-2a3c-4d8e-9f00-1c2d3e4f5a6b"
    offer = {"amount": "3750", "currency": "NGN", "institution": "ABNGNGLA", "orderId": order_id}
    offer_body = canonical_json.go_dumps(offer)
    offer_signature = signing.sign(settings.AGGREGATOR_SECRET_KEY, offer_body)

    response = client.generic(
        "POST",
        "/new_order",
        data=offer_body,
        content_type="",
        HTTP_X_REQUEST_SIGNATURE=offer_signature,
        HTTP_X_REQUEST_ID="flow-request-0001",
    )
    token = request_context.set_request_id("flow-request-0001")  # as the worker does for its tasks
    try:
        order = Order.objects.get(order_id=order_id)
        order_services.order_decide(order_pk=order.pk)
        order_services.order_accept_with_aggregator(order_pk=order.pk)
        order_services.order_start_payout(order_pk=order.pk)
        workflow.payout_step(transfer_pk=Transfer.objects.get(order=order).pk)
        delivery.outbox_deliver_due()
    finally:
        request_context.reset_request_id(token)
    status_body = canonical_json.go_dumps({"currency": "NGN", "orderId": order_id})
    status_signature = signing.sign(settings.AGGREGATOR_SECRET_KEY, status_body)
    tx_status = client.generic(
        "POST", "/tx_status", data=status_body, content_type="", HTTP_X_REQUEST_SIGNATURE=status_signature
    )

    assert response.status_code == 200
    assert tx_status.json()["data"]["status"] == "success"
    order.refresh_from_db()
    assert (order.status, order.account_identifier) == (
        OrderStatus.FULFILLED,
        ACCOUNT,
    )  # the aggregator took fulfil success
    text = log_output.getvalue()
    # The fake aggregator (werkzeug, another thread) logs too: those lines are not the node's.
    node_lines = [line for line in map(json.loads, text.splitlines()) if line["logger"] != "werkzeug"]
    events = {line["event"] for line in node_lines}
    assert {"order.received", "order.accepted", "payout.started", "order.paid", "outbox.delivered"} <= events
    tx_status_line = next(line for line in node_lines if line.get("path") == "/tx_status")
    assert {line["request_id"] for line in node_lines} == {"flow-request-0001", tx_status_line["request_id"]}
    assert re.fullmatch(r"[0-9a-f]{32}", tx_status_line["request_id"])
    assert set(outbound_request_ids) == {"flow-request-0001"}
    assert ACCOUNT not in text
    assert settings.AGGREGATOR_SECRET_KEY not in text
    assert len(outbound_signatures) >= 4
    for signature in [offer_signature, status_signature, *outbound_signatures]:
        assert signature not in text
    assert HEX_SIGNATURE.findall(text) == []


def _settings_in_subprocess(**env: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.LOG_FORMAT)",
        ],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_log_format_is_json_in_production_and_console_with_debug() -> None:
    assert _settings_in_subprocess(DEBUG="false") == "json"
    assert _settings_in_subprocess(DEBUG="true") == "console"
    assert _settings_in_subprocess(DEBUG="true", LOG_FORMAT="json") == "json"


def test_a_secret_changed_while_running_is_blanked_from_the_next_line(
    log_output: io.StringIO, settings: Any
) -> None:
    logging.getLogger("orders").info("before", extra={"detail": "warm the cache"})
    settings.AGGREGATOR_SECRET_KEY = "rotated-secret-0123456789"

    logging.getLogger("orders").info("after", extra={"detail": "key=rotated-secret-0123456789"})

    assert "rotated-secret-0123456789" not in log_output.getvalue()
