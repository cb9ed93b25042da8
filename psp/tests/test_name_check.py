"""The pre-payout account-name check (PAYOUT_NAME_CHECK off | warn | hold), resolved before the order lock."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_fsm_log.models import StateLog
from pytest_httpserver import HTTPServer

from orders import services as order_services
from orders.models import Order, OrderStatus
from orders.services import payout as payout_services
from psp.base import AccountName, Recipient
from psp.models import Transfer, TransferStatus
from psp.names import bank_name_key, person_names_match
from psp.sandbox import SandboxAdapter
from psp.tests.helpers import (
    JSON,
    LENCO_REF_1,
    SANDBOX_REF_1,
    accepted_order,
    fixture,
    run_lane,
    transfers_of,
)

pytestmark = pytest.mark.django_db
RESOLVE = "/v1/resolve"


def log_events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "psp.name_check"]


def hold_description(order: Order) -> str:
    return StateLog.objects.get(object_id=order.pk, transition="hold").description


@pytest.fixture
def lenco_only(settings: Any, lenco_fake: HTTPServer) -> HTTPServer:
    settings.PSP = ["lenco"]
    lenco_fake.expect_request("/v1/transfer", method="POST").respond_with_data(
        fixture("lenco", "v1_transfer_queued.json"), content_type=JSON
    )
    return lenco_fake


def test_person_names_match_ignores_case_accents_spacing_and_order() -> None:
    cases = {
        ("Adébáyọ̀ Ọlá", "OLA ADEBAYO"): True,
        ("Adébáyọ̀  Ọlá", "ADEBAYO OLA JOHNSON"): True,
        ("Adaeze Okafor", "okafor-adaeze"): True,
        ("Okafor", "ADAEZE OKAFOR"): True,
        ("Adebayo Ola", "ADEBAYO JOHNSON"): False,
        ("Adebayo Ola", "SANDBOX OTHER HOLDER"): False,
        ("J. Smith", "JOHN SMITH"): True,
        ("", "JOHN SMITH"): None,
        ("John Smith", "OK"): False,
    }

    assert {pair: person_names_match(*pair) for pair in cases} == cases


def test_bank_name_key_drops_the_words_that_do_not_tell_banks_apart() -> None:
    names = [
        "ACCESS BANK PLC",
        "Access Bank",
        "Guaranty Trust Bank",
        "Kuda MFB",
        "Bank of Ghana",
        "Ecobank Bank",
    ]

    assert [bank_name_key(name) for name in names] == [
        "access",
        "access",
        "guaranty trust",
        "kuda microfinance",
        "bank of ghana",
        "ecobank",
    ]


def test_name_check_off_pays_without_resolving(
    settings: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PAYOUT_NAME_CHECK = "off"

    def refuse(self: SandboxAdapter, *, recipient: Recipient, currency: str) -> AccountName:
        raise AssertionError("resolved although the name check is off")

    monkeypatch.setattr(SandboxAdapter, "resolve_account", refuse)
    order = accepted_order(account_identifier="0123458888")

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_warn_logs_a_name_mismatch_and_pays(
    settings: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PAYOUT_NAME_CHECK = "warn"
    order = accepted_order(account_identifier="0123458888")

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert log_events(caplog) == ["payout.name_mismatch"]
    assert caplog.records[0].verdict == "mismatch"  # type: ignore[attr-defined]


def test_hold_moves_an_accepted_order_with_a_mismatched_name_to_held_without_a_transfer(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.PAYOUT_NAME_CHECK = "hold"
    order = accepted_order(account_identifier="0123458888")
    before = timezone.now()

    order_services.order_start_payout(order_pk=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert order.hold_until is not None
    assert before + timedelta(seconds=240) <= order.hold_until <= timezone.now() + timedelta(seconds=240)
    assert transfers_of(order) == []
    assert (
        hold_description(order)
        == "Name check: sandbox has 'SANDBOX OTHER HOLDER', the order says 'Adébáyọ̀ Ọlá'"
    )
    assert log_events(caplog) == ["payout.name_mismatch"]


def test_hold_pays_when_the_names_match_case_accent_and_order_insensitively(
    settings: Any, lenco_only: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PAYOUT_NAME_CHECK = "hold"
    lenco_only.expect_request(RESOLVE).respond_with_data(
        fixture("lenco", "v1_resolve.json"), content_type=JSON
    )
    order = accepted_order(account_name="okafor  Adaéze")

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.PENDING)]
    resolve = lenco_only.log[0][0]
    assert (resolve.path, dict(resolve.args)) == (
        RESOLVE,
        {"accountNumber": "0123456789", "bankCode": "000014"},
    )


def test_psp_unavailable_during_the_check_warns_and_pays_in_warn_mode(
    settings: Any,
    lenco_only: HTTPServer,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.PAYOUT_NAME_CHECK = "warn"
    lenco_only.expect_request(RESOLVE).respond_with_data(
        json.dumps({"status": False, "message": "down"}), status=503, content_type=JSON
    )
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.PAYING
    assert transfers_of(order) == [("lenco", 1, LENCO_REF_1, TransferStatus.PENDING)]
    assert log_events(caplog) == ["payout.name_check_unavailable"]


def test_psp_unavailable_during_the_check_holds_in_hold_mode(settings: Any, lenco_only: HTTPServer) -> None:
    settings.PAYOUT_NAME_CHECK = "hold"
    lenco_only.expect_request(RESOLVE).respond_with_data(
        json.dumps({"status": False, "message": "down"}), status=503, content_type=JSON
    )
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert transfers_of(order) == []
    assert hold_description(order) == "Name check: lenco unavailable (lenco account_resolve: HTTP 503 down)"


def test_account_unknown_to_the_psp_holds_in_hold_mode(settings: Any, lenco_only: HTTPServer) -> None:
    settings.PAYOUT_NAME_CHECK = "hold"
    lenco_only.expect_request(RESOLVE).respond_with_data(
        fixture("lenco", "v1_resolve_failed.json"), status=400, content_type=JSON
    )
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert hold_description(order) == (
        "Name check: lenco could not find the account (Account Details could not be verified)"
    )


def test_the_account_is_resolved_before_the_order_is_locked(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PAYOUT_NAME_CHECK = "warn"
    events: list[str] = []
    real_lock, real_resolve = payout_services.order_lock, SandboxAdapter.resolve_account

    def lock(order_pk: int) -> Any:
        events.append("lock")
        return real_lock(order_pk)

    def resolve(self: SandboxAdapter, *, recipient: Recipient, currency: str) -> AccountName:
        events.append("resolve")
        return real_resolve(self, recipient=recipient, currency=currency)

    order = accepted_order()
    monkeypatch.setattr(payout_services, "order_lock", lock)
    monkeypatch.setattr(SandboxAdapter, "resolve_account", resolve)

    order_services.order_start_payout(order_pk=order.pk)

    assert events == ["resolve", "lock"]
    assert transfers_of(order) == [("sandbox", 1, SANDBOX_REF_1, TransferStatus.CREATED)]


def test_order_cancelled_while_the_name_is_resolved_is_not_paid(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PAYOUT_NAME_CHECK = "hold"
    order = accepted_order()
    real_resolve = SandboxAdapter.resolve_account

    def resolve_while_staff_cancel(
        self: SandboxAdapter, *, recipient: Recipient, currency: str
    ) -> AccountName:
        order_services.order_cancel(order_pk=order.pk, reason="Cancelled by ops", actor=None)
        return real_resolve(self, recipient=recipient, currency=currency)

    monkeypatch.setattr(SandboxAdapter, "resolve_account", resolve_while_staff_cancel)

    with pytest.raises(order_services.OrderTransitionNotAllowed):
        order_services.order_start_payout(order_pk=order.pk)

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "Cancelled by ops")
    assert not Transfer.objects.filter(order=order).exists()


def test_held_order_approved_by_staff_is_paid_despite_a_mismatch(
    settings: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PAYOUT_NAME_CHECK = "hold"
    order = accepted_order(account_identifier="0123458888")
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.HELD)

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert log_events(caplog) == ["payout.name_mismatch"]
    assert caplog.records[0].held is False  # type: ignore[attr-defined]
