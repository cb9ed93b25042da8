"""Pause and resume: one button on every admin page for operators, logged in History; paused, the node
declines every offer it decides under every mode and manual policy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User

from balances import services as balance_services
from orders import services
from orders.models import DeclineReason, OrderStatus, OutboxMessage
from orders.tests.factories import OrderFactory
from provision import control
from provision.models import NodeControl
from provision.testing import admin_client

pytestmark = pytest.mark.django_db
TOGGLE = "/admin/provision/nodecontrol/toggle/"


def operator() -> Any:
    user = User.objects.create_user(username="op", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    return admin_client(user)


@pytest.mark.parametrize(("mode", "policy"), [("auto", "hold"), ("manual", "hold"), ("manual", "staff")])
def test_a_paused_node_declines_offers_under_every_mode_and_policy(
    mode: str, policy: str, settings: Any
) -> None:
    settings.PROVISION_MODE, settings.MANUAL_POLICY = mode, policy
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    control.node_pause_set(paused=True, reason="PSP maintenance")
    order = OrderFactory.create()

    decided = services.order_decide(order_pk=order.pk)

    assert (decided.status, decided.decline_reason) == (OrderStatus.DECLINED, DeclineReason.NODE_PAUSED)
    assert OutboxMessage.objects.filter(order=order, kind="decline").count() == 1


def test_resumed_the_node_decides_again(settings: Any) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="funds")
    control.node_pause_set(paused=True, reason="drill")
    control.node_pause_set(paused=False)
    order = OrderFactory.create()

    assert services.order_decide(order_pk=order.pk).status == OrderStatus.ACCEPTING


def test_the_pause_button_is_on_every_admin_page_and_pausing_is_logged() -> None:
    client = operator()

    pages = [client.get(url) for url in ("/admin/", "/admin/orders/order/", "/admin/psp/pspcircuit/")]
    paused = client.post(TOGGLE, {"paused": "1", "reason": "bank holiday", "next": "/admin/orders/order/"})
    after = client.get("/admin/orders/order/")
    resumed = client.post(TOGGLE, {"paused": "0", "next": "/admin/"})

    assert all(b'id="node-pause"' in page.content for page in pages)
    assert paused["Location"] == "/admin/orders/order/"
    assert b'id="node-resume"' in after.content
    assert b"paused: bank holiday" in after.content
    assert resumed["Location"] == "/admin/"
    assert NodeControl.objects.get(pk=1).paused is False
    assert [e.get_change_message() for e in LogEntry.objects.order_by("pk")] == [
        "Paused: bank holiday",
        "Resumed",
    ]


def test_no_add_button_for_the_node_switch_and_its_list_opens_the_one_row() -> None:
    client = operator()

    listed = client.get("/admin/provision/nodecontrol/", follow=True)

    assert listed.status_code == 200
    assert b"Add node control" not in listed.content
    assert listed.redirect_chain[-1][0] == "/admin/provision/nodecontrol/1/change/"


def test_a_viewer_sees_the_state_but_no_button() -> None:
    user = User.objects.create_user(username="looker", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    client = admin_client(user)

    page = client.get("/admin/")
    refused = client.post(TOGGLE, {"paused": "1"})

    assert b'id="health-strip"' in page.content
    assert b'id="node-pause"' not in page.content
    assert refused.status_code == 403
    assert not NodeControl.objects.filter(paused=True).exists()


def test_the_switch_page_has_no_save_button_only_the_strip_button() -> None:
    client = operator()

    page = client.get("/admin/provision/nodecontrol/", follow=True)

    assert b'name="_save"' not in page.content
    assert b'id="node-pause"' in page.content
