"""Ops staff act from Django admin; every action goes through the services and is logged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django_fsm_log.models import StateLog

from balances import selectors as balance_selectors
from balances import services as balance_services
from balances.models import EntryKind, LedgerEntry
from orders import services
from orders.models import Order, OrderStatus, OutboxMessage
from orders.tests.factories import OrderFactory
from provision.testing import admin_client
from psp.tests.helpers import run_lane

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/orders/order/"


def staff(*perms: str) -> Client:
    user = User.objects.create_user(
        username=f"staff-{'-'.join(perms) or 'viewer'}", password="pw", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    for perm in perms:
        user.user_permissions.add(Permission.objects.get(codename=perm))
    return admin_client(user)


def held_order(**fields: Any) -> Order:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    order = OrderFactory.create(**fields)
    services.order_decide(order_pk=order.pk)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.HELD)
    order.refresh_from_db()
    return order


def act(client: Client, action: str, *orders: Order, **form: str) -> Any:
    """Run a list action as a person does: through its confirmation page ("apply" = Confirm). Every order
    action confirms first since issue 19 (before, the actions without a form ran at once from the list)."""
    data: dict[str, Any] = {"action": action, "_selected_action": [o.pk for o in orders], **form}
    data["apply"] = "Confirm"
    return client.post(CHANGELIST, data, follow=True)


def test_changelist_shows_orders_without_a_query_per_row(django_assert_max_num_queries: Any) -> None:
    client = staff()
    for _ in range(30):
        OrderFactory.create()

    # 12 for the list, 7 for the health strip every admin page carries (provision.health_strip).
    with django_assert_max_num_queries(12 + 7):
        response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert response.content.count(b"****6789") == 30


def test_payer_approves_held_payout_and_it_is_paid_by_the_sandbox(
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = staff("pay_order")
    order = held_order()

    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, "approve_payouts", order)
    run_lane()  # the payout lane sends it

    order.refresh_from_db()
    assert b"Paid 1 order(s)" in response.content or b"Started payout of 1 order(s)." in response.content
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    log = StateLog.objects.filter(object_id=order.pk, transition="start_payout").get()
    assert log.by.username == "staff-pay_order"


def test_viewer_cannot_approve_payouts() -> None:
    client = staff()
    order = held_order()

    response = act(client, "approve_payouts", order)

    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert response.status_code == 200
    assert b"No action selected" in response.content or b"approve_payouts" not in response.content


def test_cancel_asks_for_a_reason_then_cancels_and_reports() -> None:
    client = staff("approve_order")
    order = held_order()

    form_page = act(client, "cancel_orders", order)
    assert b"Cancel orders" in form_page.content
    order.refresh_from_db()
    assert order.status == OrderStatus.HELD

    act(client, "cancel_orders", order, reason="Recipient asked to stop")

    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "Recipient asked to stop")
    assert OutboxMessage.objects.get(order=order, kind="cancel").payload == {
        "reason": "Recipient asked to stop"
    }
    assert balance_selectors.balance_get(currency="NGN").reserved == Decimal("0")


def test_cancel_without_reason_changes_nothing() -> None:
    client = staff("approve_order")
    order = held_order()

    response = act(client, "cancel_orders", order, reason="")

    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert b"This field is required" in response.content


def test_acting_twice_gives_one_transition_and_a_clear_message() -> None:
    client = staff("approve_order")
    order = held_order()
    act(client, "cancel_orders", order, reason="first")

    response = act(client, "cancel_orders", order, reason="second")

    order.refresh_from_db()
    assert order.cancel_reason == "first"
    assert b"Cannot cancel an order that is cancelled" in response.content
    assert StateLog.objects.filter(object_id=order.pk, transition="cancel").count() == 1


def test_mark_paid_needs_an_external_reference_and_debits() -> None:
    client = staff("pay_order")
    order = held_order()

    act(client, "mark_paid", order, external_reference="BANK-REF-991")

    order.refresh_from_db()
    assert (order.status, order.psp, order.psp_tx_id) == (OrderStatus.PAID, "manual", "BANK-REF-991")
    balance = balance_selectors.balance_get(currency="NGN")
    assert (balance.total, balance.reserved) == (Decimal("96250"), Decimal("0"))


def test_resolve_review_not_paid_releases_and_reports_failed() -> None:
    client = staff("pay_order")
    order = held_order()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.NEEDS_REVIEW, psp="sandbox", psp_tx_id="SBX1")

    act(client, "resolve_review", order, outcome="not_paid", evidence="PSP ticket 42: never sent")

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert OutboxMessage.objects.get(order=order, dedupe_key__endswith=":failed").payload[
        "validationError"
    ] == ("PSP ticket 42: never sent")


def test_staff_policy_accept_and_decline(settings: Any, httpserver: Any) -> None:
    settings.PROVISION_MODE = "manual"
    settings.MANUAL_POLICY = "staff"
    client = staff("approve_order")
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    declined = OrderFactory.create()

    act(client, "decline_orders", declined, reason="Not today")

    declined.refresh_from_db()
    assert declined.status == OrderStatus.DECLINED
    assert OutboxMessage.objects.get(order=declined, kind="decline").payload == {"reason": "Not today"}


def in_role(role: str, username: str) -> Client:
    from django.contrib.auth.models import Group

    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return admin_client(user)


def test_roles_created_by_migration_gate_the_actions() -> None:
    order = held_order()
    viewer, operator = in_role("viewer", "vera"), in_role("operator", "otto")

    act(viewer, "cancel_orders", order, reason="no")
    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    act(operator, "cancel_orders", order, reason="recipient asked")
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED


def test_maker_checker_large_payout_needs_a_second_user(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    order = held_order()
    maker = in_role("operator", "maria")
    payer_user = User.objects.create_user(username="paul", password="pw", is_staff=True)
    from django.contrib.auth.models import Group

    payer_user.groups.add(Group.objects.get(name="payer"), Group.objects.get(name="operator"))
    payer = admin_client(payer_user)

    refused = act(payer, "approve_payouts", order)
    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert b"need an approval first" in refused.content

    act(payer, "record_approval", order)
    same_user = act(payer, "approve_payouts", order)
    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert b"cannot also pay it" in same_user.content

    Order.objects.filter(pk=order.pk).update(approved_by=None)
    act(maker, "record_approval", order)
    with django_capture_on_commit_callbacks(execute=True):
        act(payer, "approve_payouts", order)
    run_lane()  # the payout lane sends it
    order.refresh_from_db()
    assert order.status in (OrderStatus.PAID, OrderStatus.FULFILLED)
    assert order.approved_by is not None
    assert order.approved_by.username == "maria"


def in_roles(username: str, *roles: str) -> Client:
    from django.contrib.auth.models import Group

    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=roles))
    return admin_client(user)


def order_in(status: str, **fields: Any) -> Order:
    """An order with its reservation, put in ``status`` (as if it had got there)."""
    order = held_order()
    Order.objects.filter(pk=order.pk).update(status=status, **fields)
    order.refresh_from_db()
    return order


def money_and_reports(order: Order) -> tuple[str, list[str], list[str], tuple[Decimal, Decimal]]:
    """What a staff action moves: the order's state, its ledger, what it owes the aggregator, the balance."""
    order.refresh_from_db()
    balance = balance_selectors.balance_get(currency=order.currency)
    return (
        order.status,
        list(LedgerEntry.objects.filter(order=order).order_by("pk").values_list("kind", flat=True)),
        list(OutboxMessage.objects.filter(order=order).order_by("pk").values_list("dedupe_key", flat=True)),
        (balance.total, balance.reserved),
    )


def test_mark_paid_above_the_limit_by_one_user_alone_is_refused_and_changes_nothing(settings: Any) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    order = held_order()
    solo = in_roles("sam", "operator", "payer")
    before = money_and_reports(order)

    unapproved = act(solo, "mark_paid", order, external_reference="BANK-REF-1")
    act(solo, "record_approval", order)
    self_approved = act(solo, "mark_paid", order, external_reference="BANK-REF-1")

    assert b"need an approval first" in unapproved.content
    assert b"cannot also pay it" in self_approved.content
    assert money_and_reports(order) == before
    assert (order.status, order.external_reference, order.psp_tx_id) == (OrderStatus.HELD, "", "")


def test_mark_paid_above_the_limit_by_a_second_user_after_an_approval_is_paid(settings: Any) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    order = order_in(OrderStatus.ACCEPTED)
    maker, payer = in_role("operator", "maria"), in_role("payer", "paul")

    act(maker, "record_approval", order)
    act(payer, "mark_paid", order, external_reference="BANK-REF-2")

    status, ledger, reports, _balance = money_and_reports(order)
    assert (status, order.psp_tx_id) == (OrderStatus.PAID, "BANK-REF-2")
    assert order.approved_by is not None
    assert order.approved_by.username == "maria"
    assert ledger == [EntryKind.RESERVE, EntryKind.DEBIT]
    assert f"fulfil:{order.order_id}:success" in reports


def test_resolve_review_as_paid_above_the_limit_by_one_user_alone_is_refused_and_changes_nothing(
    settings: Any,
) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    order = order_in(OrderStatus.NEEDS_REVIEW, psp="sandbox", psp_tx_id="SBX1")
    solo = in_roles("sam", "operator", "payer")
    before = money_and_reports(order)

    unapproved = act(solo, "resolve_review", order, outcome="paid", evidence="statement line 7")
    act(solo, "record_approval", order)
    self_approved = act(solo, "resolve_review", order, outcome="paid", evidence="statement line 7")

    assert b"need an approval first" in unapproved.content
    assert b"cannot also pay it" in self_approved.content
    assert money_and_reports(order) == before
    assert order.status == OrderStatus.NEEDS_REVIEW


def test_resolve_review_as_paid_above_the_limit_by_a_second_user_after_an_approval_is_paid(
    settings: Any,
) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    order = order_in(OrderStatus.NEEDS_REVIEW, psp="sandbox", psp_tx_id="SBX1")
    maker, payer = in_role("operator", "maria"), in_role("payer", "paul")

    act(maker, "record_approval", order)
    act(payer, "resolve_review", order, outcome="paid", evidence="statement line 7")

    status, ledger, reports, _balance = money_and_reports(order)
    assert status == OrderStatus.PAID
    assert order.approved_by is not None
    assert order.approved_by.username == "maria"
    assert ledger == [EntryKind.RESERVE, EntryKind.DEBIT]
    assert f"fulfil:{order.order_id}:success" in reports


def test_resolve_review_as_not_paid_needs_no_second_user(settings: Any) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    order = order_in(OrderStatus.NEEDS_REVIEW, psp="sandbox", psp_tx_id="SBX1")
    payer = in_role("payer", "paul")

    act(payer, "resolve_review", order, outcome="not_paid", evidence="PSP ticket 42: never sent")

    status, ledger, _reports, _balance = money_and_reports(order)
    assert status == OrderStatus.CANCELLED
    assert ledger == [EntryKind.RESERVE, EntryKind.RELEASE]


def test_approval_can_be_recorded_where_a_staff_paid_path_starts() -> None:
    operator = in_role("operator", "olga")
    orders = {
        status: order_in(status)
        for status in (OrderStatus.ACCEPTED, OrderStatus.HELD, OrderStatus.NEEDS_REVIEW, OrderStatus.PAYING)
    }

    pages = {
        status: operator.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
        for status, order in orders.items()
    }
    for order in orders.values():
        operator.post(f"/admin/orders/order/{order.pk}/do/record_approval/", {"apply": "Confirm"})

    offered = {status: 'data-action="record_approval"' in page for status, page in pages.items()}
    assert offered == {
        OrderStatus.ACCEPTED: True,
        OrderStatus.HELD: True,
        OrderStatus.NEEDS_REVIEW: True,
        OrderStatus.PAYING: False,
    }
    approved = {status: Order.objects.get(pk=o.pk).approved_by_id is not None for status, o in orders.items()}
    assert approved == offered


def test_admin_index_shows_the_queue_oldest_first_with_counts() -> None:
    client = staff()
    older, newer = held_order(), held_order()
    from datetime import timedelta

    from django.utils import timezone

    Order.objects.filter(pk=older.pk).update(hold_until=timezone.now() + timedelta(seconds=30))
    Order.objects.filter(pk=newer.pk).update(hold_until=timezone.now() + timedelta(seconds=200))

    response = client.get("/admin/")

    content = response.content.decode()
    assert 'data-section="held">(2)' in content
    assert content.index(older.order_id[:13]) < content.index(newer.order_id[:13])
    assert "Success rate (24 h)" in content


def test_change_page_shows_only_the_transitions_allowed_now_for_this_user() -> None:
    order = held_order()
    operator = in_role("operator", "olga")
    payer = in_role("payer", "pete")

    operator_page = operator.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    payer_page = payer.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    def actions(page: str) -> list[str]:
        import re

        return re.findall(r'data-action="([a-z_]+)"', page)

    assert actions(operator_page) == ["record_approval", "cancel_orders"]
    assert actions(payer_page) == ["approve_payouts", "export_bank_file", "mark_paid"]


def test_button_confirms_then_acts_once() -> None:
    order = held_order()
    operator = in_role("operator", "omar")
    url = f"/admin/orders/order/{order.pk}/do/cancel_orders/"

    form_page = operator.get(url)
    operator.post(url, {"apply": "Confirm", "reason": "duplicate payout request", "action": "cancel_orders"})
    again = operator.get(url, follow=True)

    order.refresh_from_db()
    assert b"Cancel orders" in form_page.content
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, "duplicate payout request")
    assert b"That action is not available for this order now." in again.content


def test_transition_not_allowed_for_the_user_is_refused() -> None:
    order = held_order()
    operator = in_role("operator", "oscar")

    response = operator.post(
        f"/admin/orders/order/{order.pk}/do/approve_payouts/", {"apply": "Confirm"}, follow=True
    )

    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
    assert b"That action is not available for this order now." in response.content


def test_staff_accept_in_staff_policy_accepts_with_the_aggregator(settings: Any, aggregator: Any) -> None:
    from orders.tests.conftest import accept_data

    settings.PROVISION_MODE = "manual"
    settings.MANUAL_POLICY = "staff"
    client = staff("approve_order")
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    order = OrderFactory.create(account_identifier="", account_name="")
    aggregator.on(f"/v1/provider/orders/{order.order_id}/accept", 201, accept_data(order.order_id))

    response = act(client, "accept_orders", order)

    order.refresh_from_db()
    assert b"Accepted 1 order(s)." in response.content
    assert order.status == OrderStatus.HELD  # manual mode: the payout waits for a payer
    assert order.account_identifier == "0123456789"
    assert (
        StateLog.objects.get(object_id=order.pk, transition="begin_accept").by.username
        == "staff-approve_order"
    )


def test_outbox_admin_replays_a_refused_row_and_abandons_another() -> None:
    from orders import services as outbox_services
    from orders.models import OutboxStatus

    user = User.objects.create_superuser(username="root", password="pw")
    client = admin_client(user)
    order = OrderFactory.create()
    refused = outbox_services.outbox_enqueue(
        kind="cancel", dedupe_key="cancel:a", path="x", payload={}, order=order
    )
    pending = outbox_services.outbox_enqueue(
        kind="cancel", dedupe_key="cancel:b", path="y", payload={}, order=order
    )
    OutboxMessage.objects.filter(pk=refused.pk).update(status=OutboxStatus.REFUSED)

    client.post("/admin/orders/outboxmessage/", {"action": "replay", "_selected_action": [refused.pk]})
    client.post("/admin/orders/outboxmessage/", {"action": "abandon", "_selected_action": [pending.pk]})

    refused.refresh_from_db()
    pending.refresh_from_db()
    assert (refused.status, pending.status) == (OutboxStatus.PENDING, OutboxStatus.ABANDONED)


def outbox_rows(order: Order) -> tuple[OutboxMessage, OutboxMessage]:
    from orders import services as outbox_services
    from orders.models import OutboxStatus

    refused = outbox_services.outbox_enqueue(
        kind="fulfil", dedupe_key=f"fulfil:{order.order_id}:pending", path="x", payload={}, order=order
    )
    pending = outbox_services.outbox_enqueue(
        kind="cancel", dedupe_key=f"cancel:{order.order_id}", path="y", payload={}, order=order
    )
    OutboxMessage.objects.filter(pk=refused.pk).update(status=OutboxStatus.REFUSED)
    return refused, pending


@pytest.mark.parametrize("role", ["viewer", "payer"])
def test_a_role_without_the_outbox_permissions_can_neither_replay_nor_abandon(role: str) -> None:
    from orders.models import OutboxStatus

    refused, pending = outbox_rows(OrderFactory.create())
    client = in_role(role, f"{role}-1")

    replay = client.post(
        "/admin/orders/outboxmessage/",
        {"action": "replay", "index": "0", "_selected_action": [refused.pk]},
        follow=True,
    )
    abandon = client.post(
        "/admin/orders/outboxmessage/",
        {"action": "abandon", "index": "0", "_selected_action": [pending.pk]},
        follow=True,
    )

    refused.refresh_from_db()
    pending.refresh_from_db()
    assert (refused.status, pending.status) == (OutboxStatus.REFUSED, OutboxStatus.PENDING)
    assert b'value="replay"' not in replay.content
    assert b'value="abandon"' not in abandon.content


def test_an_operator_replays_and_abandons_outbox_rows() -> None:
    from orders.models import OutboxStatus

    refused, pending = outbox_rows(OrderFactory.create())
    client = in_role("operator", "olive")

    client.post("/admin/orders/outboxmessage/", {"action": "replay", "_selected_action": [refused.pk]})
    client.post("/admin/orders/outboxmessage/", {"action": "abandon", "_selected_action": [pending.pk]})

    refused.refresh_from_db()
    pending.refresh_from_db()
    assert (refused.status, pending.status) == (OutboxStatus.PENDING, OutboxStatus.ABANDONED)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_an_order_action_url_gives_a_user_without_its_permission_the_same_redirect_for_any_pk(
    role: str,
) -> None:
    order = held_order()
    client = in_role(role, f"{role}-2")

    answers = [
        client.get(f"/admin/orders/order/{order.pk}/do/approve_payouts/"),
        client.get(f"/admin/orders/order/{order.pk + 1000}/do/approve_payouts/"),
        client.post(f"/admin/orders/order/{order.pk + 1000}/do/approve_payouts/", {"apply": "Confirm"}),
        client.get(f"/admin/orders/order/{order.pk}/do/no_such_action/"),
    ]

    assert [(a.status_code, a["Location"]) for a in answers] == [(302, CHANGELIST)] * 4
    order.refresh_from_db()
    assert order.status == OrderStatus.HELD
