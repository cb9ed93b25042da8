"""route() keeps new payouts away from a PSP whose recent transfers fail like the aggregator would notice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from orders import services as order_services
from orders.models import OrderStatus
from orders.tests.factories import OrderFactory
from psp import health, services
from psp.models import Transfer, TransferStatus
from psp.tests.helpers import SANDBOX_REF_1, accepted_order, run_lane, transfers_of

pytestmark = pytest.mark.django_db


def recent_transfers(psp: str, *statuses: str, minutes_ago: int = 1) -> None:
    for status in statuses:
        order = OrderFactory.create()
        transfer = Transfer.objects.create(
            order=order,
            psp=psp,
            reference=f"ref-{order.pk}",
            amount=Decimal("100"),
            currency="NGN",
            status=status,
        )
        Transfer.objects.filter(pk=transfer.pk).update(
            created_at=timezone.now() - timedelta(minutes=minutes_ago)
        )


def routed() -> list[str]:
    return [adapter.name for adapter in services.route(currency="NGN", institution="ABNGNGLA")]


F, R, S, P = TransferStatus.FAILED, TransferStatus.REJECTED, TransferStatus.SUCCEEDED, TransferStatus.PENDING


def test_thresholds_mirror_the_aggregators_failure_window() -> None:
    assert (
        health.FAILURE_WINDOW,
        health.FAILURE_MIN_ATTEMPTS,
        health.FAILURE_MIN_FAILURES,
        health.FAILURE_MIN_SHARE,
    ) == (timedelta(minutes=120), 5, 3, Decimal("0.30"))


def test_psp_with_three_failures_in_five_attempts_gets_no_new_payouts(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", F, F, R, S, P)

    assert routed() == ["sandbox"]


def test_exactly_thirty_percent_failures_excludes_the_psp(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", F, F, F, S, S, S, S, S, S, S)

    assert routed() == ["sandbox"]


def test_failure_share_below_thirty_percent_keeps_routing(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", F, F, F, S, S, S, S, S, S, S, S)

    assert routed() == ["lenco", "sandbox"]


def test_fewer_than_five_attempts_never_exclude_a_psp(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", F, F, F, F)

    assert routed() == ["lenco", "sandbox"]


def test_two_failures_never_exclude_a_psp_whatever_the_share(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", F, F, S, S, S)

    assert routed() == ["lenco", "sandbox"]


def test_failures_older_than_the_window_do_not_count(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", F, F, F, minutes_ago=121)
    recent_transfers("lenco", S, S)

    assert routed() == ["lenco", "sandbox"]


def test_failures_of_another_psp_do_not_count(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("sandbox", F, F, F, F, F)

    assert routed() == ["lenco"]


def test_failing_psp_is_skipped_by_payout_start_for_the_next_one(
    lenco_then_sandbox: HTTPServer, django_capture_on_commit_callbacks: Any
) -> None:
    recent_transfers("lenco", F, F, F, S, S)
    order = accepted_order()

    order_services.order_start_payout(order_pk=order.pk)

    run_lane()

    order.refresh_from_db()
    assert transfers_of(order) == [("sandbox", 1, SANDBOX_REF_1, TransferStatus.SUCCEEDED)]
    assert order.status == OrderStatus.PAID
    assert lenco_then_sandbox.log == []


def test_health_reports_the_window_counts(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", F, R, F, S, S, S, S, S, S, P, P)

    state = health.psp_health(psps=["lenco", "sandbox"])

    assert state["lenco"] == health.PspHealth(psp="lenco", attempts=11, failures=3)  # 27 % < 30 %
    assert state["sandbox"] == health.PspHealth(psp="sandbox")
    assert (state["lenco"].failing, state["lenco"].takes_new_payouts) == (False, True)


def test_a_psp_with_too_few_failures_to_matter_has_its_volume_left_uncounted(
    lenco_then_sandbox: HTTPServer,
) -> None:
    recent_transfers("lenco", F, R, S, P, P)

    state = health.psp_health(psps=["lenco"])

    assert state["lenco"] == health.PspHealth(psp="lenco", attempts=None, failures=2)
    assert state["lenco"].takes_new_payouts


def test_invalid_recipient_refusals_never_count_against_the_psp(lenco_then_sandbox: HTTPServer) -> None:
    recent_transfers("lenco", R, R, R, S, S)
    Transfer.objects.filter(status=R).update(failure_reason="recipient_invalid")

    assert routed() == ["lenco", "sandbox"]
