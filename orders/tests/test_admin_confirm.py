"""Approve knowing what you approve: every order action confirms first, on a page that lists each order
with what to check; approving one's own request above MAKER_CHECKER_ABOVE is refused on every path."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from orders import admin_confirm, iso20022, services
from orders.models import Order, OrderStatus
from orders.tests.test_admin import CHANGELIST, held_order, money_and_reports, order_in
from provision.testing import admin_client
from psp.models import InstitutionMapping

pytestmark = pytest.mark.django_db

DEBTOR = iso20022.Debtor("Provider Ltd", "NG00012345678901", "")


def staff(username: str, *roles: str) -> tuple[User, Client]:
    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=roles))
    return user, admin_client(user)


def cells(page: str, order: Order) -> dict[str, str]:
    """The confirmation page's cells of ``order``'s row, by class, as text."""
    row = re.search(rf'<tr class="confirm-row" data-order="{order.order_id}">(.*?)</tr>', page, re.S)
    assert row is not None, "the order is not listed"
    found = re.findall(r'<td class="[^"]*?confirm-([a-z-]+)[^"]*">(.*?)</td>', row.group(1), re.S)
    return {name: " ".join(re.sub(r"<[^>]+>", " ", text).split()) for name, text in found}


def test_pay_from_the_list_shows_each_order_with_what_to_check_and_pays_nothing_yet() -> None:
    InstitutionMapping.objects.update_or_create(
        psp="sandbox",
        institution="ABNGNGLA",
        defaults={"currency": "NGN", "institution_name": "Access Bank", "psp_code": "044"},
    )
    _payer, client = staff("pam", "payer")
    order = held_order(amount=Decimal("40000"), memo="Invoice <42> & co")
    Order.objects.filter(pk=order.pk).update(hold_until=timezone.now() + timedelta(seconds=45))
    before = money_and_reports(order)

    page = client.post(CHANGELIST, {"action": "approve_payouts", "_selected_action": [order.pk]})

    content = page.content.decode()
    row = cells(content, order)
    assert row["recipient"] == "Adébáyọ̀ Ọlá"
    assert row["account"] == "******6789"
    assert row["institution"] == "ABNGNGLA Access Bank"
    assert row["memo"] == "Invoice &lt;42&gt; &amp; co"
    assert row["amount"] == "40,000.00 NGN"
    assert re.fullmatch(r"4[0-5] s", row["time-left"])
    assert row["balance-after"] == "60,000.00 NGN"  # 100,000 on the book, 40,000 paid
    assert row["name-check"] == "Not checked (PAYOUT_NAME_CHECK is off)"
    assert "0123456789" not in content
    assert money_and_reports(order) == before


def test_the_balance_after_payment_runs_over_the_orders_listed() -> None:
    first, second = held_order(amount=Decimal("1000")), held_order(amount=Decimal("2500"))

    rows = admin_confirm.confirm_rows([first, second], action="mark_paid")

    # two held_order() calls credited 100,000 each
    assert [row.balance_after for row in rows] == ["199,000.00 NGN", "196,500.00 NGN"]


def test_a_cancel_shows_the_available_balance_after_the_release() -> None:
    order = held_order(amount=Decimal("1000"))

    [row] = admin_confirm.confirm_rows([order], action="cancel_orders")

    assert (admin_confirm.balance_column("cancel_orders"), row.balance_after) == (
        "Available after release",
        "100,000.00 NGN",
    )


@pytest.mark.parametrize(
    ("seconds", "shown", "urgent"),
    [(30, "30 s", True), (59, "59 s", True), (125, "2 min 05 s", False), (-12, "overdue by 12 s", True)],
)
def test_time_left_is_in_seconds_under_a_minute_and_says_overdue(
    seconds: int, shown: str, urgent: bool
) -> None:
    now = timezone.now()

    assert admin_confirm.time_left(now + timedelta(seconds=seconds), now=now) == (shown, urgent)


def test_without_a_recorded_doubt_the_page_says_the_psp_checks_the_name_before_it_pays(settings: Any) -> None:
    settings.PAYOUT_NAME_CHECK = "warn"
    order = held_order()

    [row] = admin_confirm.confirm_rows([order], action="approve_payouts")

    assert (row.name_check, row.name_check_doubtful) == (
        "No doubt recorded; checked again through the PSP before it pays (warn)",
        False,
    )


def test_the_name_check_that_held_the_order_is_shown_as_a_doubt() -> None:
    order = order_in(OrderStatus.ACCEPTED)
    order = Order.objects.get(pk=order.pk)
    order.hold(
        until=timezone.now() + timedelta(minutes=5),
        description="Name check: sandbox has 'JOHN DOE', the order says 'Adébáyọ̀ Ọlá'",
    )
    order.save()

    [row] = admin_confirm.confirm_rows([order], action="approve_payouts")

    assert (row.name_check, row.name_check_doubtful) == (
        "sandbox has 'JOHN DOE', the order says 'Adébáyọ̀ Ọlá'",
        True,
    )


# action, state, extra form fields of the confirmation
ACTIONS = [
    ("accept_orders", OrderStatus.RECEIVED),
    ("decline_orders", OrderStatus.RECEIVED),
    ("record_approval", OrderStatus.HELD),
    ("approve_payouts", OrderStatus.HELD),
    ("export_bank_file", OrderStatus.HELD),
    ("mark_paid", OrderStatus.HELD),
    ("cancel_orders", OrderStatus.HELD),
    ("resolve_review", OrderStatus.NEEDS_REVIEW),
    ("close_reversals", OrderStatus.REVERSED),
]


@pytest.mark.parametrize(("action", "state"), ACTIONS)
def test_every_order_action_from_the_list_confirms_first_listing_each_order(
    action: str, state: str, settings: Any
) -> None:
    settings.PROVISION_MODE = "manual"
    settings.MANUAL_POLICY = "staff"
    _root, client = staff("root", "operator", "payer")
    orders = [order_in(state) for _ in range(1 if action == "mark_paid" else 2)]
    before = [money_and_reports(order) for order in orders]

    page = client.post(CHANGELIST, {"action": action, "_selected_action": [o.pk for o in orders]})

    content = page.content.decode()
    assert page.status_code == 200
    assert 'name="apply"' in content
    for order in orders:
        assert cells(content, order)["recipient"] == "Adébáyọ̀ Ọlá"
    assert [money_and_reports(order) for order in orders] == before


def test_the_order_page_button_shows_the_same_confirmation_with_the_recipient() -> None:
    _payer, client = staff("pam", "payer")
    order = held_order()

    page = client.get(f"/admin/orders/order/{order.pk}/do/approve_payouts/")

    content = page.content.decode()
    assert cells(content, order)["recipient"] == "Adébáyọ̀ Ọlá"
    assert f'href="/admin/orders/order/{order.pk}/change/" class="confirm-back"' in content
    assert Order.objects.get(pk=order.pk).status == OrderStatus.HELD


# --- maker-checker: approving one's own request above the limit is refused on every path ---------------


def approved_by(user: User, order: Order) -> None:
    services.order_approve_payout(order_pk=order.pk, actor=user)


def by_list(action: str, **form: str) -> Callable[[Client, User, Order], str]:
    def run(client: Client, user: User, order: Order) -> str:
        data = {"action": action, "_selected_action": [order.pk], "apply": "Confirm", **form}
        return client.post(CHANGELIST, data, follow=True).content.decode()

    return run


def by_button(action: str, **form: str) -> Callable[[Client, User, Order], str]:
    def run(client: Client, user: User, order: Order) -> str:
        data = {"action": action, "apply": "Confirm", **form}
        return client.post(f"/admin/orders/order/{order.pk}/do/{action}/", data, follow=True).content.decode()

    return run


def by_service(call: Callable[[User, Order], Any]) -> Callable[[Client, User, Order], str]:
    def run(client: Client, user: User, order: Order) -> str:
        try:
            call(user, order)
        except services.SecondApproverRequired as exc:
            return exc.message
        return "not refused"

    return run


BANK_FILE = {"debtor_name": "Provider Ltd", "debtor_account": "NG00012345678901"}
PATHS = {
    "list: pay via PSP": (OrderStatus.HELD, by_list("approve_payouts")),
    "list: mark paid": (OrderStatus.HELD, by_list("mark_paid", external_reference="REF-1")),
    "list: resolve review as paid": (
        OrderStatus.NEEDS_REVIEW,
        by_list("resolve_review", outcome="paid", evidence="x"),
    ),
    "list: bank file": (OrderStatus.HELD, by_list("export_bank_file", **BANK_FILE)),
    "button: pay via PSP": (OrderStatus.HELD, by_button("approve_payouts")),
    "button: mark paid": (OrderStatus.HELD, by_button("mark_paid", external_reference="REF-1")),
    "button: resolve review as paid": (
        OrderStatus.NEEDS_REVIEW,
        by_button("resolve_review", outcome="paid", evidence="x"),
    ),
    "button: bank file": (OrderStatus.HELD, by_button("export_bank_file", **BANK_FILE)),
    "service: start payout": (
        OrderStatus.HELD,
        by_service(lambda user, order: services.order_start_payout(order_pk=order.pk, actor=user)),
    ),
    "service: mark paid": (
        OrderStatus.HELD,
        by_service(
            lambda user, order: services.order_mark_paid(
                order_pk=order.pk, external_reference="R", actor=user
            )
        ),
    ),
    "service: resolve review": (
        OrderStatus.NEEDS_REVIEW,
        by_service(
            lambda user, order: services.order_resolve_review(
                order_pk=order.pk, paid=True, evidence="x", actor=user
            )
        ),
    ),
    "service: bank file": (
        OrderStatus.HELD,
        by_service(
            lambda user, order: iso20022.bank_file_export(order_pks=[order.pk], debtor=DEBTOR, actor=user)
        ),
    ),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_approving_ones_own_request_above_the_limit_is_refused_on_every_path(
    path: str, settings: Any
) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    state, run = PATHS[path]
    user, client = staff("sam", "operator", "payer")
    order = order_in(state, psp="sandbox", psp_tx_id="SBX1")
    approved_by(user, order)
    before = money_and_reports(order)

    said = run(client, user, order)

    assert "The user who approved this payout cannot also pay it" in said
    assert money_and_reports(order) == before
    assert Order.objects.get(pk=order.pk).status == state
