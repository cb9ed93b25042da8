"""Every staff action on an order leaves the same trail: admin's history (LogEntry: "History" and "Recent
actions"), the transition log (django-fsm-log) and the ledger entry it writes, each naming the staff user."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django_fsm_log.models import StateLog

from balances.models import EntryKind, LedgerEntry
from orders.models import Order, OrderStatus
from orders.tests.test_admin import CHANGELIST, held_order, order_in
from orders.tests.test_iso20022 import import_report
from provision.testing import admin_client
from psp.models import Transfer

pytestmark = pytest.mark.django_db


def staff_user(username: str, *roles: str) -> tuple[User, Client]:
    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=roles))
    return user, admin_client(user)


def confirm(client: Client, action: str, order: Order, **form: str) -> Any:
    """Run a list action on one order through its confirmation page."""
    data = {"action": action, "_selected_action": [order.pk], "apply": "Confirm", **form}
    return client.post(CHANGELIST, data, follow=True)


def history(order: Order) -> list[tuple[str, int, str]]:
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Order), object_id=str(order.pk)
    ).order_by("pk")
    return [
        (User.objects.get(pk=entry.user_id).username, entry.action_flag, entry.get_change_message())
        for entry in entries
    ]


def transition_log(order: Order, transition: str) -> list[str | None]:
    logs = StateLog.objects.filter(object_id=order.pk, transition=transition)
    return [log.by.username if log.by else None for log in logs]


def ledger_actors(order: Order, kind: str) -> list[str | None]:
    entries = LedgerEntry.objects.filter(order=order, kind=kind).select_related("actor")
    return [entry.actor.username if entry.actor else None for entry in entries]


# action, starting state, form, (transition, ledger kind or None), what the history says
CASES = [
    (
        "cancel_orders",
        OrderStatus.HELD,
        {"reason": "Recipient asked to stop"},
        ("cancel", EntryKind.RELEASE),
        "Cancelled, now cancelled: Recipient asked to stop",
    ),
    (
        "mark_paid",
        OrderStatus.HELD,
        {"external_reference": "BANK-REF-7"},
        ("mark_paid", EntryKind.DEBIT),
        "Marked paid outside the node, now paid: external reference BANK-REF-7",
    ),
    (
        "resolve_review",
        OrderStatus.NEEDS_REVIEW,
        {"outcome": "paid", "evidence": "statement line 7"},
        ("resolve_paid", EntryKind.DEBIT),
        "Resolved the review, now paid: paid: statement line 7",
    ),
    (
        "resolve_review",
        OrderStatus.NEEDS_REVIEW,
        {"outcome": "not_paid", "evidence": "PSP ticket 42"},
        ("resolve_not_paid", EntryKind.RELEASE),
        "Resolved the review, now cancelled: not paid: PSP ticket 42",
    ),
    (
        "close_reversals",
        OrderStatus.REVERSED,
        {"evidence": "settled with the aggregator, ticket 9"},
        ("close_reversal", None),
        "Closed the reversal, now cancelled: settled with the aggregator, ticket 9",
    ),
    (
        "approve_payouts",
        OrderStatus.HELD,
        {},
        ("start_payout", None),
        "Approved the payout through the PSP, now paying",
    ),
    (
        "record_approval",
        OrderStatus.HELD,
        {},
        (None, None),
        "Recorded an approval to pay, now held for approval",
    ),
]


@pytest.mark.parametrize(("action", "state", "form", "trail", "said"), CASES)
def test_a_staff_action_is_in_history_the_transition_log_and_the_ledger_with_its_user(
    action: str,
    state: str,
    form: dict[str, str],
    trail: tuple[str | None, str | None],
    said: str,
) -> None:
    _user, client = staff_user("sam", "operator", "payer")
    order = order_in(state, psp="sandbox", psp_tx_id="SBX1")

    confirm(client, action, order, **form)

    transition, kind = trail
    assert history(order) == [("sam", CHANGE, said)]
    if transition:
        assert transition_log(order, transition) == ["sam"]
    if kind:
        assert ledger_actors(order, kind) == ["sam"]


def test_the_recent_actions_of_the_index_list_a_staff_cancel() -> None:
    _user, client = staff_user("sam", "operator")
    order = held_order()
    confirm(client, "cancel_orders", order, reason="duplicate")

    index = client.get("/admin/").content.decode()

    assert "Recent actions" in index
    assert f"{order.order_id} (cancelled)" in index


def test_the_history_page_of_an_order_shows_who_marked_it_paid() -> None:
    _user, client = staff_user("pam", "payer")
    order = held_order()
    confirm(client, "mark_paid", order, external_reference="BANK-REF-8")

    page = client.get(f"/admin/orders/order/{order.pk}/history/").content.decode()

    assert "pam" in page
    assert "Marked paid outside the node, now paid: external reference BANK-REF-8" in page


def test_mark_paid_records_the_payer_as_approver_when_nobody_approved_before() -> None:
    user, client = staff_user("pam", "payer")
    order = held_order()

    confirm(client, "mark_paid", order, external_reference="BANK-REF-9")

    order.refresh_from_db()
    assert (order.status, order.approved_by) == (OrderStatus.PAID, user)


def test_mark_paid_keeps_an_earlier_approval_of_another_user(settings: Any) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    maker, maker_client = staff_user("maria", "operator")
    _payer, payer_client = staff_user("paul", "payer")
    order = held_order()
    confirm(maker_client, "record_approval", order)

    confirm(payer_client, "mark_paid", order, external_reference="BANK-REF-10")

    order.refresh_from_db()
    assert (order.status, order.approved_by) == (OrderStatus.PAID, maker)
    assert ledger_actors(order, EntryKind.DEBIT) == ["paul"]


def test_bank_file_export_and_status_import_are_in_history_with_the_user(settings: Any) -> None:
    settings.MAKER_CHECKER_ABOVE = {}
    user, client = staff_user("erin", "payer")
    order = held_order()

    exported = confirm(
        client,
        "export_bank_file",
        order,
        debtor_name="Provider Ltd",
        debtor_account="NG00012345678901",
        debtor_agent_bic="",
        execution_date="",
    )
    transfer = Transfer.objects.get(order=order)
    import_report(client, (transfer.reference, "ACCC", ""))

    assert exported.status_code == 200
    order.refresh_from_db()
    assert order.approved_by == user
    assert [said for _user, _flag, said in history(order)] == [
        "Exported in a pain.001 bank file (paying)",
        f"pain.002 status ACCC for {transfer.reference}: transfer succeeded",
    ]
    assert transition_log(order, "payout_succeeded") == ["erin"]
    assert ledger_actors(order, EntryKind.DEBIT) == ["erin"]
