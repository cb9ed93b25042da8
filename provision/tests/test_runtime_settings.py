"""Runtime settings: the environment's values by default, what the settings role changed in admin on top,
each change logged with its old and new values, and the money decisions reading the value in effect."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.test import Client

from balances import services as balance_services
from orders import services
from orders.models import DeclineReason, OrderStatus
from orders.services.common import SecondApproverRequired, order_check_payout_allowed
from orders.tests.factories import OrderFactory
from provision import runtime
from provision.models import NodeSettings
from provision.testing import admin_client
from psp.models import PspRoute

pytestmark = pytest.mark.django_db
URL = "/admin/provision/nodesettings/1/change/"
EMPTY_FORM = {field: "" for field in runtime.FIELDS}


def settings_user() -> Client:
    user = User.objects.create_user(username="tuner", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="settings"))
    return admin_client(user)


def test_without_a_row_every_value_is_the_environments(settings: Any) -> None:
    settings.PROVISION_MODE = "manual"
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}

    current = runtime.current()

    assert (current.provision_mode, current.maker_checker_above) == ("manual", {"NGN": Decimal("1000")})
    assert current.manual_approval_timeout == settings.MANUAL_APPROVAL_TIMEOUT


def test_a_row_overrides_only_the_fields_staff_filled_in(settings: Any) -> None:
    settings.MANUAL_POLICY = "hold"
    NodeSettings.objects.create(pk=1, manual_approval_timeout=90, max_order_amount="NGN:5000,*:10")
    runtime.forget()

    current = runtime.current()

    assert current.manual_approval_timeout == 90
    assert current.max_order_amount == {"NGN": Decimal("5000"), "*": Decimal("10")}
    assert current.manual_policy == "hold"


def test_the_row_is_read_at_most_once_per_ttl(django_assert_num_queries: Any) -> None:
    runtime.current()

    with django_assert_num_queries(0):
        runtime.current()
        runtime.current()
    runtime.forget()
    with django_assert_num_queries(1):
        runtime.current()


def test_the_settings_role_changes_a_setting_and_the_change_is_logged_old_to_new(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.MANUAL_APPROVAL_TIMEOUT = 240
    client = settings_user()

    page = client.get("/admin/provision/nodesettings/", follow=True)
    with django_capture_on_commit_callbacks(execute=True):  # the save forgets the cached row on commit
        posted = client.post(
            URL, {**EMPTY_FORM, "manual_approval_timeout": "120", "provision_mode": "manual"}
        )

    assert page.status_code == 200
    assert b"the environment's MANUAL_APPROVAL_TIMEOUT (240)" in page.content
    assert posted.status_code == 302
    assert runtime.current().manual_approval_timeout == 120
    entry = LogEntry.objects.get()
    assert entry.user_id == User.objects.get(username="tuner").pk
    assert entry.get_change_message() == (
        "Changed provision_mode: (environment: auto) -> manual; "
        "manual_approval_timeout: (environment: 240) -> 120"
    )


def test_a_malformed_amount_list_is_refused_and_nothing_changes() -> None:
    client = settings_user()
    client.get("/admin/provision/nodesettings/")

    posted = client.post(URL, {**EMPTY_FORM, "maker_checker_above": "NGN:lots"})

    assert posted.status_code == 200
    assert b"An amount, or a comma-separated CUR:amount list." in posted.content
    assert NodeSettings.objects.get(pk=1).maker_checker_above == ""
    assert not LogEntry.objects.exists()


def test_a_viewer_sees_the_settings_but_cannot_change_them() -> None:
    user = User.objects.create_user(username="looker", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    client = admin_client(user)

    page = client.get("/admin/provision/nodesettings/", follow=True)
    posted = client.post(URL, {**EMPTY_FORM, "provision_mode": "manual"})

    assert page.status_code == 200
    assert posted.status_code == 403
    assert runtime.current().provision_mode == "auto"


def test_a_maximum_set_in_admin_declines_a_larger_offer() -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    NodeSettings.objects.create(pk=1, max_order_amount="NGN:1000")
    runtime.forget()  # as the admin's save does on commit
    order = OrderFactory.create(amount=Decimal("3750"))

    decided = services.order_decide(order_pk=order.pk)

    assert (decided.status, decided.decline_reason) == (
        OrderStatus.DECLINED,
        DeclineReason.AMOUNT_ABOVE_MAXIMUM,
    )


def test_a_maker_checker_threshold_set_in_admin_needs_a_second_user() -> None:
    NodeSettings.objects.create(pk=1, maker_checker_above="1000")
    runtime.forget()
    order = OrderFactory.build(amount=Decimal("3750"))
    payer = User(pk=7, username="payer")

    with pytest.raises(SecondApproverRequired):
        order_check_payout_allowed(order=order, actor=payer)


def test_the_settings_role_changes_a_psp_route_and_history_shows_old_and_new() -> None:
    route = PspRoute.objects.create(currency="GHS", institution="*", psp="sandbox", priority=100)
    client = settings_user()

    posted = client.post(
        f"/admin/psp/psproute/{route.pk}/change/",
        {
            "currency": "GHS",
            "institution": "*",
            "psp": "sandbox",
            "priority": "5",
            "enabled": "on",
            "note": "",
        },
    )

    assert posted.status_code == 302
    assert PspRoute.objects.get(pk=route.pk).priority == 5
    assert LogEntry.objects.get().get_change_message() == "Changed priority: 100 -> 5"


def test_an_approval_timeout_of_zero_is_refused() -> None:
    client = settings_user()
    client.get("/admin/provision/nodesettings/")

    posted = client.post(URL, {**EMPTY_FORM, "manual_approval_timeout": "0"})

    assert posted.status_code == 200
    assert NodeSettings.objects.get(pk=1).manual_approval_timeout is None
