"""The order state machine: every allowed transition, every forbidden one refused, the field protected."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed
from django_fsm_log.models import StateLog

from balances import selectors as balance_selectors
from balances import services as balance_services
from orders import services
from orders.models import Order, OrderStatus, OutboxMessage
from orders.tests.factories import OrderFactory

S = OrderStatus
ALLOWED: dict[str, set[str]] = {
    "begin_accept": {S.RECEIVED},
    "confirm_accept": {S.ACCEPTING},
    "accept_refused": {S.ACCEPTING},
    "hold": {S.ACCEPTED},
    "start_payout": {S.ACCEPTED, S.HELD},
    "payout_succeeded": {S.PAYING},
    "payout_failed": {S.PAYING},
    "payout_refused": {S.PAYING},
    "payout_unknown": {S.PAYING},
    "resolve_paid": {S.NEEDS_REVIEW},
    "resolve_not_paid": {S.NEEDS_REVIEW},
    "mark_paid": {S.ACCEPTED, S.HELD},
    "fulfil_reported": {S.PAID},
    "cancel": {S.ACCEPTED, S.HELD},
    "decline": {S.RECEIVED},
    "expire": {S.RECEIVED},
}


@pytest.mark.parametrize("transition", sorted(ALLOWED))
@pytest.mark.parametrize("state", [s.value for s in OrderStatus])
def test_transition_is_allowed_exactly_from_its_source_states(state: str, transition: str) -> None:
    order = OrderFactory.build(status=state)

    assert can_proceed(getattr(order, transition)) is (state in ALLOWED[transition])


@pytest.mark.parametrize("state", [S.FULFILLED, S.CANCELLED, S.DECLINED, S.EXPIRED, S.LOST])
def test_final_states_allow_no_transition(state: str) -> None:
    order = OrderFactory.build(status=state)

    assert [name for name in ALLOWED if can_proceed(getattr(order, name))] == []


def test_status_cannot_be_assigned_directly() -> None:
    order = OrderFactory.build()

    with pytest.raises(AttributeError):
        order.status = OrderStatus.PAID


@pytest.mark.django_db
def test_a_stale_copy_cannot_overwrite_a_newer_state() -> None:
    from django_fsm import ConcurrentTransition

    order = OrderFactory.create()
    stale = Order.objects.get(pk=order.pk)
    services.order_decide(order_pk=order.pk)  # declines (no balance) in its own transaction

    stale.expire(at=timezone.now())
    with pytest.raises(ConcurrentTransition):
        stale.save()


@pytest.mark.django_db
def test_a_transition_is_logged_with_who_and_why() -> None:
    staff = User.objects.create_user("ops")
    order = OrderFactory.create()

    order.begin_accept(by=staff, description="Reserved; accepting with the aggregator")
    order.save()

    [row] = StateLog.objects.filter(object_id=order.pk)
    assert row.content_object == order
    assert (row.by, row.source_state, row.state, row.transition, row.description) == (
        staff,
        OrderStatus.RECEIVED,
        OrderStatus.ACCEPTING,
        "begin_accept",
        "Reserved; accepting with the aggregator",
    )


@pytest.mark.django_db
def test_a_rolled_back_transition_leaves_no_log_row() -> None:
    order = OrderFactory.create()

    def fails_after_the_transition() -> None:
        with transaction.atomic():
            order.begin_accept(description="then the transaction fails")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fails_after_the_transition()

    assert not StateLog.objects.filter(object_id=order.pk).exists()


@pytest.mark.django_db
def test_held_payout_not_approved_in_time_is_cancelled_with_a_reason(settings: Any) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("10000"), reason="funds")
    order = OrderFactory.create()
    services.order_decide(order_pk=order.pk)
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.HELD, hold_until=timezone.now() - timedelta(seconds=1)
    )

    assert services.order_expire_due() == 1

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "Payout not approved in time")
    assert OutboxMessage.objects.get(order=order, kind="cancel").payload == {
        "reason": "Payout not approved in time"
    }
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")


@pytest.mark.django_db
def test_held_order_marked_paid_after_its_deadline_stays_paid_and_is_not_cancelled() -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("10000"), reason="funds")
    order = OrderFactory.create()
    services.order_decide(order_pk=order.pk)
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.HELD, hold_until=timezone.now() - timedelta(seconds=1)
    )

    services.order_mark_paid(order_pk=order.pk, external_reference="BANK-REF-7", actor=None)
    cancelled = services.order_expire_due()

    order.refresh_from_db()
    assert (cancelled, order.status, order.psp_tx_id) == (0, OrderStatus.PAID, "BANK-REF-7")
    assert not OutboxMessage.objects.filter(order=order, kind="cancel").exists()
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("6250")


@pytest.mark.django_db
def test_offer_past_its_window_is_expired_by_the_sweep() -> None:
    order = OrderFactory.create(accept_deadline=timezone.now() - timedelta(seconds=1))
    fresh = OrderFactory.create()

    assert services.order_expire_due() == 1

    order.refresh_from_db()
    fresh.refresh_from_db()
    assert (order.status, fresh.status) == (OrderStatus.EXPIRED, OrderStatus.RECEIVED)
