"""manage.py process_orders / outbox: the same services as the worker, for cron and for ops."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from orders.models import OrderStatus, OutboxMessage, OutboxStatus
from orders.services import outbox
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_process_orders_runs_one_pass_of_the_pipeline(settings: Any) -> None:
    settings.AGGREGATOR_BASE_URL = "http://127.0.0.1:9"
    order = OrderFactory.create()

    output = run("process_orders")

    order.refresh_from_db()
    assert order.status == OrderStatus.DECLINED  # no balance: declined by the same rules as the worker
    assert output.startswith("expired=0 ")


def test_outbox_lists_undelivered_rows_and_replays_and_abandons() -> None:
    order = OrderFactory.create()
    message = outbox.outbox_enqueue(
        kind="cancel", dedupe_key="cancel:x", path="orders/x/cancel", payload={}, order=order
    )
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.REFUSED, last_status_code=400)

    listing = run("outbox", "list")
    replayed = run("outbox", "replay", str(message.pk))
    abandoned = run("outbox", "abandon", str(message.pk))

    assert "cancel:x" in listing
    assert " 400 " in listing
    assert replayed.strip() == f"{message.pk} cancel:x -> pending"
    assert abandoned.strip() == f"{message.pk} cancel:x -> abandoned"


@pytest.mark.parametrize("command", ["abandon", "replay"])
def test_outbox_command_refuses_a_delivered_row_as_the_admin_action_does(command: str) -> None:
    order = OrderFactory.create()
    message = outbox.outbox_enqueue(
        kind="cancel", dedupe_key="cancel:y", path="orders/y/cancel", payload={}, order=order
    )
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.DELIVERED)

    with pytest.raises(CommandError, match="already delivered"):
        run("outbox", command, str(message.pk))

    message.refresh_from_db()
    assert message.status == OutboxStatus.DELIVERED


def test_outbox_abandon_with_an_actor_goes_into_admin_history() -> None:
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth.models import User

    ops = User.objects.create_user(username="olga", is_staff=True)
    message = outbox.outbox_enqueue(
        kind="cancel", dedupe_key="cancel:z", path="orders/z/cancel", payload={}, order=OrderFactory.create()
    )

    run("outbox", "abandon", str(message.pk), "--actor", "olga")

    entry = LogEntry.objects.get(object_id=str(message.pk))
    assert (entry.user_id, entry.get_change_message()) == (
        ops.pk,
        "Abandoned: the aggregator will not be told (manage.py outbox)",
    )


def test_outbox_unknown_row_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="no outbox row 999"):
        run("outbox", "replay", "999")


def test_accepted_order_no_psp_can_take_is_cancelled_after_five_minutes() -> None:
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from balances import services as balance_services
    from orders import services, workflow
    from orders.models import Order
    from psp.models import PspCircuit

    balance_services.balance_credit(currency="NGN", amount=Decimal("10000"), reason="funds")
    order = OrderFactory.create()
    services.order_decide(order_pk=order.pk)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.ACCEPTED, accepted_at=timezone.now())
    PspCircuit.objects.create(psp="sandbox", state="open", consecutive_failures=5, opened_at=timezone.now())

    assert workflow.payout_start(order_pk=order.pk) == OrderStatus.ACCEPTED  # waiting for a PSP
    order.refresh_from_db()
    assert order.payout_due_at is not None
    assert order.payout_due_at > timezone.now()  # tried again later
    Order.objects.filter(pk=order.pk).update(accepted_at=timezone.now() - timedelta(minutes=6))
    assert workflow.payout_start(order_pk=order.pk) == OrderStatus.CANCELLED

    order.refresh_from_db()
    assert order.cancel_reason == "No payout provider available"


def test_sync_balances_records_the_sandbox_psp_balance_and_the_drift_and_leaves_the_ledger() -> None:
    # Contract change (issue 19): the command used to post an ADJUST that moved the ledger to the PSP.
    from balances import selectors as balance_selectors
    from balances.models import LedgerEntry, PspBalance

    output = run("sync_balances")

    assert output.splitlines()[0] == "sandbox: NGN, KES"
    assert "NGN: drift 50000000" in output
    assert PspBalance.objects.get(psp="sandbox", currency="NGN").drift == Decimal("50000000")
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("0")
    assert not LedgerEntry.objects.exists()
