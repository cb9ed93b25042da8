"""M-Pesa's per-transaction limits (whole KES 10-250,000) are decline rules: an order M-Pesa would refuse
is declined, or routed to another PSP, before it is accepted, never failed after."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from balances import services as balance_services
from orders import services as order_services
from orders import workflow
from orders.models import DeclineReason, OrderStatus
from orders.tests.factories import OrderFactory
from psp import services as psp_services
from psp.models import Transfer
from psp.tests.conformance.fakes.mpesa import MpesaFake
from psp.tests.helpers import accepted_order

pytestmark = pytest.mark.django_db


def decided(amount: str) -> Any:
    order = OrderFactory.create(
        currency="KES", institution="SAFAKEPC", amount=Decimal(amount), account_identifier="254708374149"
    )
    balance_services.balance_credit(currency="KES", amount=Decimal("1000000"), reason="funds")
    return order_services.order_decide(order_pk=order.pk)


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("9", DeclineReason.AMOUNT_BELOW_MINIMUM),
        ("250001", DeclineReason.AMOUNT_ABOVE_MAXIMUM),
        ("1500.50", DeclineReason.UNSUPPORTED_INSTITUTION),
    ],
)
def test_an_amount_mpesa_refuses_is_declined_before_accepting(
    mpesa_fake: MpesaFake, amount: str, reason: DeclineReason
) -> None:
    order = decided(amount)

    assert order.status == OrderStatus.DECLINED
    assert order.decline_reason == reason
    assert mpesa_fake.server.log == []


@pytest.mark.parametrize("amount", ["10", "250000"])
def test_amounts_at_the_limits_are_taken(mpesa_fake: MpesaFake, amount: str) -> None:
    assert decided(amount).status == OrderStatus.ACCEPTING


def test_an_amount_mpesa_refuses_goes_to_a_psp_that_takes_it(mpesa_fake: MpesaFake, settings: Any) -> None:
    settings.PSP = ["mpesa", "sandbox"]
    order = accepted_order(
        amount="300000",
        funds="1000000",
        currency="KES",
        institution="SAFAKEPC",
        account_identifier="254708374149",
    )

    workflow.payout_start(order_pk=order.pk)

    assert Transfer.objects.get(order=order).psp == "sandbox"
    assert mpesa_fake.posts() == 0


def test_routing_leaves_out_a_psp_refusing_the_amount(mpesa_fake: MpesaFake, settings: Any) -> None:
    settings.PSP = ["mpesa", "sandbox"]

    small = psp_services.route(currency="KES", institution="SAFAKEPC", amount=Decimal("1500"))
    large = psp_services.route(currency="KES", institution="SAFAKEPC", amount=Decimal("300000"))

    assert [adapter.name for adapter in small] == ["mpesa", "sandbox"]
    assert [adapter.name for adapter in large] == ["sandbox"]
    assert (
        psp_services.psp_amount_refusal(currency="KES", institution="SAFAKEPC", amount=Decimal("300000"))
        is None
    )  # the sandbox takes it
