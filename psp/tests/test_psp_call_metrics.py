"""Every adapter call made by psp.services is timed and counted by outcome in provision.metrics.psp_call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pytest_httpserver import HTTPServer

from orders import services as order_services
from orders import workflow
from provision import metrics
from psp import registry, services
from psp.base import PayoutRequest, PayoutResult
from psp.models import PspCircuit, Transfer, TransferStatus
from psp.sandbox import SandboxAdapter
from psp.tests.helpers import JSON, LENCO_REF_1, accepted_order, fixture, lenco_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []

    def record(*, psp: str, operation: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        seen.append((psp, operation, outcome))

    monkeypatch.setattr(metrics, "psp_call", record)
    return seen


def start_and_send(order_pk: int) -> Transfer:
    order_services.order_start_payout(order_pk=order_pk)
    transfer = Transfer.objects.get(order_id=order_pk)
    workflow.payout_step(transfer_pk=transfer.pk)
    transfer.refresh_from_db()
    return transfer


def test_sandbox_payout_records_one_successful_initiate_payout(calls: list[tuple[str, str, str]]) -> None:
    order = accepted_order()

    start_and_send(order.pk)

    assert calls == [("sandbox", "initiate_payout", "ok")]


def test_lenco_refusal_is_recorded_as_rejected(
    settings: Any, lenco_fake: HTTPServer, calls: list[tuple[str, str, str]]
) -> None:
    settings.PSP = ["lenco"]
    lenco_fake.expect_request("/v1/transfer", method="POST").respond_with_data(
        lenco_error(message="Invalid recipient account", code="05"), status=400, content_type=JSON
    )
    order = accepted_order()

    start_and_send(order.pk)

    assert calls == [("lenco", "initiate_payout", "rejected")]


def test_lenco_outage_then_look_up_is_recorded_as_unavailable_then_ok(
    settings: Any, lenco_fake: HTTPServer, calls: list[tuple[str, str, str]]
) -> None:
    settings.PSP = ["lenco"]
    lenco_fake.expect_request("/v1/transfer", method="POST").respond_with_data(
        json.dumps({"status": False, "message": "down"}), status=503, content_type=JSON
    )
    lenco_fake.expect_request(f"/v1/transfer/by-reference/{LENCO_REF_1}").respond_with_data(
        fixture("lenco", "v1_transfer_successful.json"), content_type=JSON
    )
    order = accepted_order()
    transfer = start_and_send(order.pk)

    workflow.payout_step(transfer_pk=transfer.pk)

    assert calls == [("lenco", "initiate_payout", "unavailable"), ("lenco", "get_payout", "ok")]


class CrashingSandbox(SandboxAdapter):
    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        raise KeyError("transaction")


def test_adapter_crash_is_recorded_as_error_and_kept_as_an_unknown_outcome(
    monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, str, str]]
) -> None:
    monkeypatch.setattr(registry, "adapter", lambda name: CrashingSandbox())
    order = accepted_order()

    transfer = start_and_send(order.pk)

    assert calls == [("sandbox", "initiate_payout", "error")]
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)
    assert PspCircuit.objects.get(psp="sandbox").consecutive_failures == 1


def test_account_resolve_and_balance_read_are_recorded(calls: list[tuple[str, str, str]]) -> None:
    name = services.account_resolve(account_identifier="0123456789", institution="ABNGNGLA", currency="NGN")
    readings = services.psp_balances_read(psp="sandbox")

    assert name == "SANDBOX ACCOUNT 6789"
    assert [reading.currency for reading in readings] == ["NGN", "KES", "GHS"]
    assert calls == [("sandbox", "resolve_account", "ok"), ("sandbox", "get_balances", "ok")]


def test_recorded_call_reaches_the_prometheus_histogram() -> None:
    labels = {"psp": "sandbox", "operation": "get_balances", "outcome": "ok"}
    before = REGISTRY.get_sample_value("provision_psp_call_seconds_count", labels) or 0.0

    services.psp_balances_read(psp="sandbox")

    assert REGISTRY.get_sample_value("provision_psp_call_seconds_count", labels) == before + 1


def test_successful_calls_write_nothing_to_a_healthy_circuit(calls: list[tuple[str, str, str]]) -> None:
    services.psp_balances_read(psp="sandbox")

    assert calls == [("sandbox", "get_balances", "ok")]
    assert not PspCircuit.objects.exists()
