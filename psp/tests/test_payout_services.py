"""Payouts through the PSP layer: at most one per order, looked up by reference before any resend."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from balances import selectors as balance_selectors
from balances.models import EntryKind, LedgerEntry
from orders import services as order_services
from orders import workflow
from orders.models import Order, OrderStatus, OutboxMessage
from orders.tests.factories import OrderFactory
from psp import registry, services
from psp.base import PayoutRequest, PayoutResult, PayoutStatus, PspUnavailable
from psp.models import SandboxPayout, Transfer, TransferStatus
from psp.sandbox import SandboxAdapter

pytestmark = pytest.mark.django_db
ORDER_UUID = "559028af-6e15-4b21-bab5-052a248db249"


def accepted_order(account: str = "0123456789", **fields: Any) -> Order:
    order = OrderFactory.create(account_identifier=account, **fields)
    from balances import services as balance_services

    balance_services.balance_credit(currency=order.currency, amount=Decimal("100000"), reason="funds")
    from orders import services as order_services

    order_services.order_decide(order_pk=order.pk)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.ACCEPTED)  # as if the aggregator said 201
    order.refresh_from_db()
    return order


def pay(order: Order) -> Transfer:
    order_services.order_start_payout(order_pk=order.pk)
    transfer = Transfer.objects.get(order=order)
    workflow.payout_step(transfer_pk=transfer.pk)
    transfer.refresh_from_db()
    order.refresh_from_db()
    return transfer


def fulfil_statuses(order: Order) -> list[str]:
    return [m.payload["validationStatus"] for m in OutboxMessage.objects.filter(order=order, kind="fulfil")]


def test_successful_payout_debits_and_reports_pending_then_success() -> None:
    order = accepted_order()

    transfer = pay(order)

    assert transfer.status == TransferStatus.SUCCEEDED
    assert order.status == OrderStatus.PAID
    assert order.psp == "sandbox"
    assert order.psp_tx_id == transfer.psp_transaction_id
    assert fulfil_statuses(order) == ["pending", "success"]
    assert [m.payload["txId"] for m in OutboxMessage.objects.filter(order=order, kind="fulfil")] == [
        order.psp_tx_id,
        order.psp_tx_id,
    ]
    balance = balance_selectors.balance_get(currency="NGN")
    assert (balance.total, balance.reserved) == (Decimal("96250"), Decimal("0"))
    assert list(LedgerEntry.objects.filter(order=order).values_list("kind", flat=True)) == [
        EntryKind.RESERVE,
        EntryKind.DEBIT,
    ]


def test_failed_payout_releases_and_reports_failed_with_reason() -> None:
    order = accepted_order(account="0123451111")

    transfer = pay(order)

    assert transfer.status == TransferStatus.FAILED
    assert order.status == OrderStatus.CANCELLED
    assert order.cancel_reason == "Insufficient funds in your account"
    assert fulfil_statuses(order) == ["pending", "failed"]
    failed = OutboxMessage.objects.get(order=order, dedupe_key__endswith=":failed")
    assert failed.payload["validationError"] == "Insufficient funds in your account"
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")


def test_refusal_before_money_moved_cancels_with_contract_reason() -> None:
    order = accepted_order(account="0123450000")

    transfer = pay(order)

    assert transfer.status == TransferStatus.REJECTED
    assert order.status == OrderStatus.CANCELLED
    assert order.cancel_reason == "Invalid recipient bank details"
    assert OutboxMessage.objects.get(order=order, kind="cancel").payload == {
        "reason": "Invalid recipient bank details"
    }
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")


def test_pending_payout_reports_pending_and_is_settled_by_polling(settings: Any) -> None:
    settings.SANDBOX_LATENCY_SECONDS = 3600
    order = accepted_order()

    transfer = pay(order)

    assert (transfer.status, order.status) == (TransferStatus.PENDING, OrderStatus.PAYING)
    assert fulfil_statuses(order) == ["pending"]
    SandboxPayout.objects.update(complete_at=timezone.now() - timedelta(seconds=1))
    workflow.payout_step(transfer_pk=transfer.pk)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert fulfil_statuses(order) == ["pending", "success"]


def test_held_order_past_its_approval_deadline_is_not_paid_when_the_sweep_is_late() -> None:
    from django.contrib.auth.models import User

    from orders import services as order_services

    order = accepted_order()
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.HELD, hold_until=timezone.now() - timedelta(seconds=1)
    )
    payer = User.objects.create_user(username="paul", is_staff=True)

    with pytest.raises(order_services.OrderTransitionNotAllowed) as refused:
        order_services.order_start_payout(order_pk=order.pk, actor=payer)

    order.refresh_from_db()
    assert refused.value.code == "hold_expired"
    assert order.status == OrderStatus.HELD
    assert not Transfer.objects.filter(order=order).exists()
    assert list(LedgerEntry.objects.filter(order=order).values_list("kind", flat=True)) == [EntryKind.RESERVE]
    assert not OutboxMessage.objects.filter(order=order).exists()
    assert order_services.order_expire_due() == 1
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "Payout not approved in time")


def test_payout_cannot_start_twice() -> None:
    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)

    from orders.services import OrderTransitionNotAllowed

    with pytest.raises(OrderTransitionNotAllowed):
        order_services.order_start_payout(order_pk=order.pk)

    assert Transfer.objects.filter(order=order).count() == 1


def test_database_refuses_a_second_live_transfer_for_an_order() -> None:
    from django.db import IntegrityError, transaction

    order = accepted_order()
    order_services.order_start_payout(order_pk=order.pk)

    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.create(
            order=order, psp="sandbox", attempt=2, reference="other", amount=order.amount, currency="NGN"
        )


@pytest.mark.parametrize(
    ("order_id", "other_id"),
    [("a" * 32 + "-first", "a" * 32 + "-second"), ("order-42", "order42")],
)
def test_orders_whose_ids_differ_only_past_32_characters_or_in_dashes_both_pay(
    order_id: str, other_id: str
) -> None:
    order, other = accepted_order(order_id=order_id), accepted_order(order_id=other_id)

    transfer, other_transfer = pay(order), pay(other)

    assert transfer.reference != other_transfer.reference
    assert (order.status, other.status) == (OrderStatus.PAID, OrderStatus.PAID)
    assert SandboxPayout.objects.count() == 2


@pytest.mark.parametrize("other_id", [ORDER_UUID.upper(), ORDER_UUID.replace("-", "")])
def test_lenco_payouts_of_orders_whose_ids_differ_only_in_case_or_dashes_both_start(
    settings: Any, lenco_fake: HTTPServer, other_id: str
) -> None:
    settings.PSP = ["lenco"]
    order, other = accepted_order(order_id=ORDER_UUID), accepted_order(order_id=other_id)

    order_services.order_start_payout(order_pk=order.pk)
    order_services.order_start_payout(order_pk=other.pk)

    order.refresh_from_db()
    other.refresh_from_db()
    assert (order.status, other.status) == (OrderStatus.PAYING, OrderStatus.PAYING)
    references = Transfer.objects.filter(psp="lenco").values_list("reference", flat=True)
    assert len(set(references)) == 2


class CommitsThenTimesOut(SandboxAdapter):
    """The PSP takes the payout, then the answer is lost (read timeout)."""

    sends = 0

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        type(self).sends += 1
        super().initiate_payout(request)
        raise PspUnavailable("read timeout", psp=self.name)


@pytest.fixture
def committing_psp(monkeypatch: pytest.MonkeyPatch) -> type[CommitsThenTimesOut]:
    CommitsThenTimesOut.sends = 0
    monkeypatch.setattr(registry, "adapter", lambda name: CommitsThenTimesOut())
    return CommitsThenTimesOut


def test_timeout_after_the_psp_committed_never_pays_twice(committing_psp: type[CommitsThenTimesOut]) -> None:
    order = accepted_order()

    transfer = pay(order)
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)
    workflow.payout_step(transfer_pk=transfer.pk)  # a retry asks about the reference first
    workflow.payout_step(transfer_pk=transfer.pk)

    order.refresh_from_db()
    assert committing_psp.sends == 1
    assert SandboxPayout.objects.count() == 1
    assert order.status == OrderStatus.PAID


class UnknownStatus(SandboxAdapter):
    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        return PayoutResult(reference=request.reference, status=PayoutStatus.UNKNOWN)


def test_unknown_answer_goes_to_review_and_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "adapter", lambda name: UnknownStatus())
    order = accepted_order()

    transfer = pay(order)

    assert (transfer.status, order.status) == (TransferStatus.UNKNOWN, OrderStatus.NEEDS_REVIEW)
    assert services.transfers_due(now=timezone.now() + timedelta(days=1)) == []
    assert balance_selectors.balance_get(currency="NGN").reserved == order.amount
