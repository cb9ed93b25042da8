"""A PSP takes back a payout it had made (Paystack's transfer.reversed, and the like): handled in one place
for every adapter. The money is booked back, the order waits for staff, nothing is sent again."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from balances import selectors as balance_selectors
from balances import services as balance_services
from balances.models import EntryKind, LedgerEntry
from orders import services as order_services
from orders.models import OrderStatus
from orders.selectors import order_tx_status
from psp import services
from psp.models import SandboxPayout, Transfer, TransferStatus
from psp.tests.helpers import accepted_order, run_lane

pytestmark = pytest.mark.django_db


def paid_order() -> Transfer:
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    transfer = Transfer.objects.get(order=order)
    assert transfer.status == TransferStatus.SUCCEEDED
    return transfer


def test_a_reversal_announced_after_success_books_the_money_back_and_waits_for_staff() -> None:
    transfer = paid_order()
    total_paid = balance_selectors.balance_get(currency="NGN").total
    SandboxPayout.objects.update(status="reversed")

    assert services.transfer_mark_due(psp="sandbox", reference=transfer.reference) == 1  # the webhook
    run_lane()

    transfer.refresh_from_db()
    order = transfer.order
    order.refresh_from_db()
    assert (transfer.status, order.status) == (TransferStatus.REVERSED, OrderStatus.REVERSED)
    assert balance_selectors.balance_get(currency="NGN").total == total_paid + order.amount
    kinds = list(LedgerEntry.objects.filter(order=order).values_list("kind", flat=True))
    assert kinds == [EntryKind.RESERVE, EntryKind.DEBIT, EntryKind.CREDIT]
    assert balance_services.balance_verify() == []
    assert order_tx_status(order=order) == {
        "status": "failed",
        "psp": "sandbox",
        "txId": order.psp_tx_id,
        "error": "Payout reversed by the payment provider",
    }


def test_a_reversed_payout_is_never_sent_again_and_staff_close_it() -> None:
    transfer = paid_order()
    SandboxPayout.objects.update(status="reversed")
    services.transfer_mark_due(psp="sandbox", reference=transfer.reference)
    run_lane()

    with pytest.raises(order_services.OrderTransitionNotAllowed):
        order_services.order_start_payout(order_pk=transfer.order_id)
    assert run_lane() == 0
    closed = order_services.order_close_reversal(
        order_pk=transfer.order_id, evidence="Refund agreed with the aggregator, ticket 42", actor=None
    )

    assert closed.status == OrderStatus.CANCELLED
    assert Transfer.objects.filter(order_id=transfer.order_id).count() == 1
    assert SandboxPayout.objects.count() == 1


def test_a_read_of_a_succeeded_transfer_that_is_still_succeeded_changes_nothing() -> None:
    transfer = paid_order()
    balance_before = balance_selectors.balance_get(currency="NGN").total

    services.transfer_mark_due(psp="sandbox", reference=transfer.reference)
    run_lane()

    transfer.refresh_from_db()
    assert (transfer.status, transfer.next_check_at) == (TransferStatus.SUCCEEDED, None)
    assert balance_selectors.balance_get(currency="NGN").total == balance_before
    assert transfer.order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)


def test_a_transfer_reversed_before_it_ever_succeeded_is_a_failure_of_the_payout(settings: object) -> None:
    settings.SANDBOX_LATENCY_SECONDS = 3600  # type: ignore[attr-defined]
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)
    run_lane()
    SandboxPayout.objects.update(status="reversed", complete_at=timezone.now())
    transfer = Transfer.objects.get(order=order)
    Transfer.objects.filter(pk=transfer.pk).update(next_check_at=transfer.created_at)

    run_lane()

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")
