"""The circuit breaker per PSP: opens on consecutive retryable failures, probes after a cool-down, and only
ever keeps NEW payouts away; look-ups of in-flight transfers still go to their own PSP."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from orders import services as order_services
from orders import workflow
from orders.models import OrderStatus
from provision.testing import admin_client, run_together
from psp import health, services
from psp.models import CircuitState, PspCircuit, SandboxPayout, Transfer, TransferStatus
from psp.tests.helpers import (
    JSON,
    LENCO_REF_1,
    SANDBOX_REF_1,
    accepted_order,
    fixture,
    paying_transfer,
    run_lane,
    transfers_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def breaker_settings(settings: Any) -> None:
    settings.PSP_BREAKER_FAILURES = 3
    settings.PSP_BREAKER_COOLDOWN = 60


def circuit(psp: str = "lenco") -> tuple[str, int]:
    row = PspCircuit.objects.get(psp=psp)
    return (row.state, row.consecutive_failures)


def open_circuit(psp: str = "lenco", *, opened_seconds_ago: int = 0) -> None:
    PspCircuit.objects.create(
        psp=psp,
        state=CircuitState.OPEN,
        consecutive_failures=3,
        opened_at=timezone.now() - timedelta(seconds=opened_seconds_ago),
    )


def routed(currency: str = "NGN", institution: str = "ABNGNGLA") -> list[str]:
    return [adapter.name for adapter in services.route(currency=currency, institution=institution)]


def test_circuit_opens_after_the_configured_consecutive_failures() -> None:
    health.circuit_record(psp="lenco", ok=False)
    health.circuit_record(psp="lenco", ok=False)
    assert circuit() == (CircuitState.CLOSED, 2)

    health.circuit_record(psp="lenco", ok=False)

    assert circuit() == (CircuitState.OPEN, 3)
    assert PspCircuit.objects.get(psp="lenco").opened_at is not None


def test_an_answer_breaks_the_failure_streak() -> None:
    for ok in (False, False, True, False, False):
        health.circuit_record(psp="lenco", ok=ok)

    assert circuit() == (CircuitState.CLOSED, 2)


def test_open_circuit_keeps_new_payouts_away_from_the_psp(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    order = accepted_order()
    open_circuit("lenco")

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert transfers_of(order) == [("sandbox", 1, SANDBOX_REF_1, TransferStatus.SUCCEEDED)]
    assert order.status == OrderStatus.PAID
    assert lenco_then_sandbox.log == []


def test_open_circuit_half_opens_after_the_cooldown_and_lets_exactly_one_probe_through(
    lenco_then_sandbox: HTTPServer,
) -> None:
    open_circuit("lenco", opened_seconds_ago=61)
    assert routed() == ["lenco", "sandbox"]

    first, second = health.circuit_claim_probe(psp="lenco"), health.circuit_claim_probe(psp="lenco")

    assert (first, second) == (True, False)
    assert circuit() == (CircuitState.HALF_OPEN, 3)
    assert routed() == ["sandbox"]


def test_open_circuit_within_the_cooldown_refuses_the_probe(lenco_then_sandbox: HTTPServer) -> None:
    open_circuit("lenco", opened_seconds_ago=59)

    assert health.circuit_claim_probe(psp="lenco") is False
    assert routed() == ["sandbox"]
    assert circuit() == (CircuitState.OPEN, 3)


def test_successful_probe_closes_the_circuit() -> None:
    open_circuit("lenco", opened_seconds_ago=61)
    health.circuit_claim_probe(psp="lenco")

    health.circuit_record(psp="lenco", ok=True)

    row = PspCircuit.objects.get(psp="lenco")
    assert (row.state, row.consecutive_failures, row.opened_at, row.probe_at) == (
        CircuitState.CLOSED,
        0,
        None,
        None,
    )


def test_failed_probe_reopens_the_circuit_and_restarts_the_cooldown() -> None:
    open_circuit("lenco", opened_seconds_ago=61)
    health.circuit_claim_probe(psp="lenco")
    before = timezone.now()

    health.circuit_record(psp="lenco", ok=False)

    row = PspCircuit.objects.get(psp="lenco")
    assert (row.state, row.consecutive_failures, row.probe_at) == (CircuitState.OPEN, 4, None)
    assert row.opened_at is not None
    assert row.opened_at >= before
    assert health.circuit_claim_probe(psp="lenco") is False


def test_answers_during_the_cooldown_do_not_close_the_circuit() -> None:
    open_circuit("lenco", opened_seconds_ago=10)

    health.circuit_record(psp="lenco", ok=True)

    assert circuit() == (CircuitState.OPEN, 3)


def test_a_probe_that_never_reports_is_given_up_after_another_cooldown() -> None:
    open_circuit("lenco", opened_seconds_ago=200)
    health.circuit_claim_probe(psp="lenco")
    PspCircuit.objects.filter(psp="lenco").update(probe_at=timezone.now() - timedelta(seconds=61))

    assert health.circuit_claim_probe(psp="lenco") is True
    assert circuit() == (CircuitState.HALF_OPEN, 3)


def test_status_look_ups_still_go_to_the_psp_of_an_open_circuit(
    lenco_then_sandbox: HTTPServer,
) -> None:
    transfer = paying_transfer(psp="lenco", reference=LENCO_REF_1)
    open_circuit("lenco")
    lenco_then_sandbox.expect_request(f"/v1/transfer/by-reference/{LENCO_REF_1}").respond_with_data(
        fixture("lenco", "v1_transfer_successful.json"), content_type=JSON
    )

    workflow.payout_step(transfer_pk=transfer.pk)

    status = Transfer.objects.get(pk=transfer.pk).status

    transfer.order.refresh_from_db()
    assert status == TransferStatus.SUCCEEDED
    assert (transfer.order.status, transfer.order.psp) == (OrderStatus.PAID, "lenco")
    assert len(lenco_then_sandbox.log) == 1
    assert SandboxPayout.objects.count() == 0
    assert circuit() == (CircuitState.OPEN, 3)


def test_consecutive_lenco_failures_seen_by_the_services_open_its_circuit_for_new_payouts(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    transfer = paying_transfer(
        psp="lenco", reference=LENCO_REF_1, order_id="7d3b1f0e-2c4a-4e8f-9b6a-1c2d3e4f5a6b"
    )
    lenco_then_sandbox.expect_request(f"/v1/transfer/by-reference/{LENCO_REF_1}").respond_with_data(
        json.dumps({"status": False, "message": "Bad gateway"}), status=502, content_type=JSON
    )
    for _ in range(3):
        workflow.payout_step(transfer_pk=transfer.pk)
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    assert circuit() == (CircuitState.OPEN, 3)
    order.refresh_from_db()
    assert (order.status, order.psp) == (OrderStatus.PAID, "sandbox")
    assert len(lenco_then_sandbox.log) == 3


def test_no_psp_with_a_closed_circuit_leaves_the_order_accepted_for_a_later_try(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    settings.PSP = ["lenco"]
    order = accepted_order()
    open_circuit("lenco")

    with pytest.raises(services.NoPspAvailable):
        order_services.order_start_payout(order_pk=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.ACCEPTED
    assert transfers_of(order) == []


def test_circuit_reset_closes_an_open_circuit() -> None:
    open_circuit("lenco")

    health.circuit_reset(psp="lenco")

    assert circuit() == (CircuitState.CLOSED, 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_processes_claim_the_half_open_probe_exactly_once() -> None:
    open_circuit("lenco", opened_seconds_ago=61)

    claims = run_together([lambda: health.circuit_claim_probe(psp="lenco") for _ in range(6)])

    assert sorted(claims) == [False, False, False, False, False, True]
    assert circuit() == (CircuitState.HALF_OPEN, 3)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_are_all_counted_in_the_shared_circuit(settings: Any) -> None:
    settings.PSP_BREAKER_FAILURES = 100

    run_together([lambda: health.circuit_record(psp="lenco", ok=False) for _ in range(8)])

    assert circuit() == (CircuitState.CLOSED, 8)


def test_ops_close_an_open_circuit_from_admin(admin_user: Any) -> None:
    open_circuit("lenco")
    client = admin_client(admin_user)
    row = PspCircuit.objects.get(psp="lenco")

    response = client.post(
        "/admin/psp/pspcircuit/",
        {"action": "close_circuits", "_selected_action": [str(row.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    assert circuit() == (CircuitState.CLOSED, 0)


def test_staff_who_may_only_see_circuits_cannot_close_one(client: Any, django_user_model: Any) -> None:
    from django.contrib.auth.models import Permission

    open_circuit("lenco")
    viewer = django_user_model.objects.create_user(username="vic", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pspcircuit"))
    client.force_login(viewer)
    row = PspCircuit.objects.get(psp="lenco")

    response = client.post(
        "/admin/psp/pspcircuit/",
        {"action": "close_circuits", "index": "0", "_selected_action": [str(row.pk)]},
        follow=True,
    )

    assert circuit() == (CircuitState.OPEN, 3)
    assert b'value="close_circuits"' not in response.content
