"""GET /health/ready tells the operator about payouts a PSP holds for a one-time password (Paystack with
transfer OTP on): the ``psp`` check fails and names the PSP, how many, and since when."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from orders.tests.factories import OrderFactory
from provision.models import Heartbeat
from psp.models import Transfer, TransferStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _worker_and_lane_alive() -> None:
    from django_q.models import Success

    now = timezone.now()
    Success.objects.create(
        id="e" * 32, name="sweep", func="orders.tasks.sweep", started=now, stopped=now, success=True
    )
    Heartbeat.beat("payout_lane")


def transfer(*, psp: str, status: str, last_status: str, attempt: int = 1) -> Transfer:
    order = OrderFactory.create()
    return Transfer.objects.create(
        order=order,
        psp=psp,
        attempt=attempt,
        reference=f"pn-{order.order_id.replace('-', '')}-{attempt}",
        amount=Decimal("100"),
        currency="NGN",
        status=status,
        sends=1,
        last_response={"status": last_status, "transfer_code": "TRF_x"},
    )


def test_a_paystack_transfer_waiting_for_an_otp_makes_the_node_not_ready(
    client: Client, settings: Any
) -> None:
    settings.PSP = ["sandbox", "paystack"]
    settings.PAYSTACK_SECRET_KEY = "sk_test_readiness"
    held = transfer(psp="paystack", status=TransferStatus.PENDING, last_status="otp")
    Transfer.objects.filter(pk=held.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    transfer(psp="paystack", status=TransferStatus.PENDING, last_status="pending")
    transfer(psp="paystack", status=TransferStatus.FAILED, last_status="otp")  # abandoned since: over

    response = client.get("/health/ready")

    assert response.status_code == 503
    data = response.json()["data"]
    assert data["failing"] == ["psp"]
    paystack = data["checks"]["psp"]["psps"]["paystack"]
    assert (paystack["takesNewPayouts"], paystack["waitingForOtp"]) == (True, 1)
    held.refresh_from_db()
    assert paystack["waitingForOtpSince"] == held.created_at.isoformat()
    assert data["checks"]["psp"]["psps"]["sandbox"] == {"circuit": "closed", "takesNewPayouts": True}


def test_no_payout_waiting_for_an_otp_keeps_the_psp_check_as_it_was(client: Client, settings: Any) -> None:
    settings.PSP = ["paystack"]
    settings.PAYSTACK_SECRET_KEY = "sk_test_readiness"
    transfer(psp="paystack", status=TransferStatus.PENDING, last_status="pending")

    response = client.get("/health/ready?checks=psp")

    assert response.status_code == 200
    assert response.json()["data"]["checks"]["psp"] == {
        "ok": True,
        "psps": {"paystack": {"circuit": "closed", "takesNewPayouts": True}},
    }
