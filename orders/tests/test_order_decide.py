"""Deciding an offered order: decline with a contract reason, or reserve and move to accepting."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from balances import selectors as balance_selectors
from balances.models import EntryKind, LedgerEntry
from orders import services
from orders.models import DeclineReason, OrderStatus, OutboxKind, OutboxMessage
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def test_order_within_rules_and_balance_is_reserved_and_accepting(funded: None) -> None:
    order = OrderFactory.create(amount=Decimal("3750"))

    decided = services.order_decide(order_pk=order.pk)

    assert decided.status == OrderStatus.ACCEPTING
    balance = balance_selectors.balance_get(currency="NGN")
    assert (balance.total, balance.reserved, balance.available) == (
        Decimal("100000"),
        Decimal("3750"),
        Decimal("96250"),
    )
    assert LedgerEntry.objects.get(order=order).kind == EntryKind.RESERVE


def test_insufficient_balance_declines_and_queues_decline_call(funded: None) -> None:
    order = OrderFactory.create(amount=Decimal("100000.01"))

    decided = services.order_decide(order_pk=order.pk)

    assert decided.status == OrderStatus.DECLINED
    assert decided.decline_reason == DeclineReason.INSUFFICIENT_BALANCE
    message = OutboxMessage.objects.get(order=order)
    assert (message.kind, message.path, message.payload) == (
        OutboxKind.DECLINE,
        f"orders/{order.order_id}/decline",
        {"reason": "Insufficient funds"},
    )
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")


@pytest.mark.parametrize(
    ("overrides", "settings_overrides", "reason"),
    [
        ({"currency": "GHS"}, {}, DeclineReason.UNSUPPORTED_CURRENCY),
        (
            {"amount": Decimal("50")},
            {"MIN_ORDER_AMOUNT": {"NGN": Decimal("100")}},
            DeclineReason.AMOUNT_BELOW_MINIMUM,
        ),
        (
            {"amount": Decimal("5000")},
            {"MAX_ORDER_AMOUNT": {"*": Decimal("4000")}},
            DeclineReason.AMOUNT_ABOVE_MAXIMUM,
        ),
    ],
)
def test_rule_violations_decline_with_machine_readable_reason(
    funded: None,
    settings: Any,
    overrides: dict[str, object],
    settings_overrides: dict[str, object],
    reason: str,
) -> None:
    for name, value in settings_overrides.items():
        setattr(settings, name, value)
    order = OrderFactory.create(**overrides)

    decided = services.order_decide(order_pk=order.pk)

    assert decided.status == OrderStatus.DECLINED
    assert decided.decline_reason == reason
    assert not LedgerEntry.objects.filter(order=order).exists()


def test_order_past_its_window_expires_without_any_call(funded: None) -> None:
    order = OrderFactory.create(accept_deadline=timezone.now() - timedelta(seconds=1))

    decided = services.order_decide(order_pk=order.pk)

    assert decided.status == OrderStatus.EXPIRED
    assert not OutboxMessage.objects.exists()


def test_deciding_twice_reserves_once(funded: None) -> None:
    order = OrderFactory.create()

    services.order_decide(order_pk=order.pk)
    services.order_decide(order_pk=order.pk)

    assert LedgerEntry.objects.filter(order=order, kind=EntryKind.RESERVE).count() == 1


def test_staff_policy_leaves_the_order_for_staff(funded: None, settings: Any) -> None:
    settings.PROVISION_MODE = "manual"
    settings.MANUAL_POLICY = "staff"
    order = OrderFactory.create()

    decided = services.order_decide(order_pk=order.pk)

    assert decided.status == OrderStatus.RECEIVED
    assert not LedgerEntry.objects.filter(order=order).exists()


def test_institution_no_enabled_psp_can_pay_is_declined(funded: None, settings: Any) -> None:
    from psp import registry

    settings.PSP = ["lenco"]
    settings.LENCO_API_KEY = "token"
    registry.adapter.cache_clear()
    try:
        payable = OrderFactory.create(institution="ABNGNGLA")  # Access Bank: NIP 000014 in the seeded mapping
        unknown = OrderFactory.create(institution="NOSUCHBANK")

        assert services.order_decide(order_pk=payable.pk).status == OrderStatus.ACCEPTING
        declined = services.order_decide(order_pk=unknown.pk)
    finally:
        registry.adapter.cache_clear()

    assert declined.status == OrderStatus.DECLINED
    assert declined.decline_reason == DeclineReason.UNSUPPORTED_INSTITUTION


def test_paused_node_declines_new_offers(funded: None) -> None:
    from provision.models import NodeControl

    NodeControl.objects.create(pk=1, paused=True, paused_reason="PSP maintenance")
    order = OrderFactory.create()

    decided = services.order_decide(order_pk=order.pk)

    assert (decided.status, decided.decline_reason) == (OrderStatus.DECLINED, DeclineReason.NODE_PAUSED)


def test_every_payable_psp_unhealthy_declines_with_no_payout_provider(funded: None) -> None:
    from django.utils import timezone

    from psp.models import PspCircuit

    PspCircuit.objects.create(psp="sandbox", state="open", consecutive_failures=5, opened_at=timezone.now())
    order = OrderFactory.create()

    decided = services.order_decide(order_pk=order.pk)

    assert (decided.status, decided.decline_reason) == (OrderStatus.DECLINED, DeclineReason.PSP_UNAVAILABLE)
