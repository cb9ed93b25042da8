"""manage.py reconcile reports every disagreement between the node, the PSPs and the aggregator."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderStatus, OutboxMessage, OutboxStatus
from orders.reconciliation import reconcile
from orders.tests.conftest import AggregatorFake
from psp.models import SandboxPayout, Transfer, TransferStatus
from psp.tests.test_payout_services import accepted_order, pay

pytestmark = pytest.mark.django_db


def day_ago() -> datetime:
    return timezone.now() - timedelta(days=1)


def run(*args: str) -> str:
    out = StringIO()
    call_command("reconcile", "--since", "2020-01-01", *args, stdout=out)
    return out.getvalue()


def paid_and_reported() -> Order:
    order = accepted_order()
    pay(order)
    OutboxMessage.objects.filter(order=order).update(status=OutboxStatus.DELIVERED)
    return order


def test_agreeing_books_report_nothing_and_exit_zero() -> None:
    paid_and_reported()

    assert run("--no-aggregator").strip().endswith("no mismatches since 2020-01-01T00:00:00+00:00")


def test_paid_locally_but_not_at_the_psp_is_reported_with_exit_one(tmp_path: Path) -> None:
    order = paid_and_reported()
    SandboxPayout.objects.update(status="failed")
    csv_path = tmp_path / "out.csv"

    with pytest.raises(CommandError, match="1 mismatch"):
        run("--no-aggregator", "--csv", str(csv_path))

    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["kind"], r["order_id"]) for r in rows] == [("paid_locally_not_at_psp", order.order_id)]


def test_paid_at_the_psp_but_not_locally_is_reported() -> None:
    order = paid_and_reported()
    with transaction.atomic():
        Transfer.objects.update(status=TransferStatus.PENDING)
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAYING)

    with pytest.raises(CommandError):
        run("--no-aggregator")
    kinds = [m.kind for m in reconcile(since=day_ago(), check_aggregator=False)]
    assert kinds == ["paid_at_psp_not_locally"]


def test_amount_difference_is_reported() -> None:
    paid_and_reported()
    SandboxPayout.objects.update(amount=Decimal("3749"))

    kinds = [m.kind for m in reconcile(since=day_ago(), check_aggregator=False)]

    assert kinds == ["amount_difference"]


def test_paid_but_fulfil_not_delivered_is_reported() -> None:
    order = accepted_order()
    pay(order)

    mismatches = reconcile(since=day_ago(), check_aggregator=False)
    assert [(m.kind, m.order_id) for m in mismatches] == [("paid_not_reported_fulfilled", order.order_id)]


def test_aggregator_still_processing_a_paid_order_is_reported(
    aggregator: AggregatorFake, settings: Any
) -> None:
    settings.CURRENCIES = ["NGN"]
    order = paid_and_reported()
    listed = {"id": order.order_id, "status": "processing"}
    aggregator.on("/v1/provider/orders", 200, {"orders": [listed]}, method="GET")

    mismatches = reconcile(since=day_ago())
    assert {m.kind for m in mismatches} == {"paid_but_aggregator_processing"}


def test_a_transfer_still_open_is_reported_however_old_it_is() -> None:
    order = accepted_order()
    transfer = pay(order)
    with transaction.atomic():
        Transfer.objects.filter(pk=transfer.pk).update(
            status=TransferStatus.UNKNOWN, created_at=timezone.now() - timedelta(days=40)
        )
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.NEEDS_REVIEW)
    SandboxPayout.objects.update(status="stuck")  # the sandbox keeps it pending

    mismatches = reconcile(since=day_ago(), check_aggregator=False)

    assert [(m.kind, m.order_id, m.local, m.remote) for m in mismatches] == [
        ("transfer_not_final", order.order_id, "unknown/needs_review", "pending")
    ]


def test_a_transfer_rejected_locally_that_the_psp_has_is_reported() -> None:
    paid_and_reported()
    Transfer.objects.update(status=TransferStatus.REJECTED)

    kinds = [m.kind for m in reconcile(since=day_ago(), check_aggregator=False)]

    assert kinds == ["rejected_but_at_psp"]
