"""Property: whatever happens to orders, the ledger explains the balances and nothing goes negative."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from balances import selectors as balance_selectors
from balances import services as balance_services
from orders import services as order_services
from orders import workflow
from orders.clients.aggregator import AcceptedOrder
from orders.models import RESERVED_STATES, Order, OrderStatus
from orders.tests.factories import OrderFactory
from psp.models import Transfer

ACCOUNTS = {"ok": "0123456789", "fails": "0123451111", "refused": "0123450000"}

operations = st.lists(
    st.tuples(
        st.sampled_from(["receive", "accept", "pay", "cancel", "expire", "review"]),
        st.integers(min_value=0, max_value=5),
        st.sampled_from(sorted(ACCOUNTS)),
        st.decimals(min_value=Decimal("1"), max_value=Decimal("40000"), places=2),
    ),
    max_size=25,
)


class LedgerPropertyTests(TestCase):
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations)
    def test_random_lifecycles_keep_ledger_and_balances_equal_and_non_negative(self, ops: list[Any]) -> None:
        balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
        orders: list[Order] = []
        for action, index, account, amount in ops:
            if action == "receive":
                order = OrderFactory.create(amount=amount, account_identifier=ACCOUNTS[account])
                order_services.order_decide(order_pk=order.pk)
                orders.append(order)
                continue
            if not orders:
                continue
            order = orders[index % len(orders)]
            order.refresh_from_db()
            self._apply(action, order)
            self._assert_invariants()

    def _apply(self, action: str, order: Order) -> None:
        try:
            if action == "accept" and order.status == OrderStatus.ACCEPTING:
                accepted = AcceptedOrder(
                    order.order_id, order.amount, order.institution, order.account_identifier, "X", "", None
                )
                order_services.order_apply_accepted(order_pk=order.pk, accepted=accepted)
            elif action == "pay":
                order_services.order_start_payout(order_pk=order.pk)
                workflow.payout_step(transfer_pk=Transfer.objects.filter(order=order).latest("pk").pk)
            elif action == "cancel":
                order_services.order_cancel(order_pk=order.pk, reason="ops", actor=None)
            elif action == "expire":
                Order.objects.filter(pk=order.pk, status=OrderStatus.HELD).update(hold_until=order.created_at)
                order_services.order_expire_due()
            elif action == "review" and order.status == OrderStatus.NEEDS_REVIEW:
                order_services.order_resolve_review(
                    order_pk=order.pk, paid=True, evidence="bank statement", actor=None
                )
        except order_services.OrderTransitionNotAllowed:
            pass

    def _assert_invariants(self) -> None:
        assert balance_services.balance_verify() == []
        balance = balance_selectors.balance_get(currency="NGN")
        owed = Order.objects.filter(status__in=RESERVED_STATES).aggregate(s=Sum("amount"))["s"] or Decimal(
            "0"
        )
        assert balance.reserved == owed
        paid = Order.objects.filter(status__in=[OrderStatus.PAID, OrderStatus.FULFILLED]).aggregate(
            s=Sum("amount")
        )
        assert balance.total == Decimal("100000") - (paid["s"] or Decimal("0"))
        assert balance.reserved >= 0
        assert balance.available >= 0
