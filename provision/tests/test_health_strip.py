"""The health strip on every admin page: each item coloured by its level and linked to the list that
explains it, a handful of queries, and every item needing a person also in the index's queue."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from django_q.models import Failure, Success

from orders.models import OutboxKind, OutboxMessage, OutboxStatus
from orders.tests.factories import OrderFactory
from provision import control, health_strip
from provision.models import Heartbeat
from provision.testing import admin_client
from psp.models import CircuitState, PspCircuit

pytestmark = pytest.mark.django_db
ITEM = re.compile(rb'<a class="health-item health-(\w+)" data-item="(\w+)" href="([^"]+)"')


def viewer() -> Client:
    user = User.objects.create_user(username="looker", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    return admin_client(user)


def strip(content: bytes) -> dict[str, tuple[str, str]]:
    return {key.decode(): (level.decode(), url.decode()) for level, key, url in ITEM.findall(content)}


def all_is_well() -> None:
    now = timezone.now()
    Success.objects.create(id="a" * 32, name="sweep", func="orders.tasks.sweep", started=now, stopped=now)
    Heartbeat.objects.create(name="payout_lane", beat_at=now)


def refused_cancel() -> OutboxMessage:
    order = OrderFactory.create()
    return OutboxMessage.objects.create(
        kind=OutboxKind.CANCEL,
        order=order,
        dedupe_key=f"cancel:{order.order_id}",
        path=f"orders/{order.order_id}/cancel",
        payload={"reason": "Held too long"},
        status=OutboxStatus.REFUSED,
        last_status_code=404,
        last_error="HTTP 404: order not found",
    )


def test_a_healthy_node_shows_every_item_green_or_informative_with_its_link() -> None:
    all_is_well()

    page = viewer().get("/admin/")

    assert strip(page.content) == {
        "node": ("ok", "/admin/provision/nodecontrol/"),
        "mode": ("info", "/admin/provision/nodesettings/"),
        "worker": ("ok", "/admin/django_q/success/"),
        "payout_lane": ("ok", "/admin/provision/heartbeat/"),
        "psp": ("ok", "/admin/psp/pspcircuit/"),
        "outbox": ("ok", "/admin/orders/outboxmessage/?status__exact=pending"),
        "tasks": ("ok", "/admin/django_q/failure/"),
        "environment": ("warn", "/admin/provision/nodesettings/"),
    }
    assert b'id="ops-attention"' not in page.content


def test_each_problem_turns_its_item_red_and_lands_in_waiting_for_you(settings: Any) -> None:
    settings.PROVISION_MODE, settings.MANUAL_POLICY = "manual", "hold"
    Success.objects.create(
        id="a" * 32,
        name="sweep",
        func="orders.tasks.sweep",
        started=timezone.now() - timedelta(hours=1),
        stopped=timezone.now() - timedelta(hours=1),
    )
    PspCircuit.objects.create(psp="sandbox", state=CircuitState.OPEN, opened_at=timezone.now())
    refused = refused_cancel()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Failure.objects.create(
        id="b" * 32,
        name="boom",
        func="orders.tasks.sweep",
        started=an_hour_ago,
        stopped=an_hour_ago,
        success=False,
    )
    control.node_pause_set(paused=True, reason="drill")

    page = viewer().get("/admin/")

    levels = {key: level for key, (level, _url) in strip(page.content).items()}
    assert levels == {
        "node": "warn",
        "mode": "info",
        "worker": "bad",
        "payout_lane": "bad",
        "psp": "bad",
        "outbox": "bad",
        "tasks": "bad",
        "environment": "warn",
    }
    assert b"manual (hold)" in page.content
    attention = page.content.split(b'id="ops-attention"')[1].split(b"</table>")[0]
    for key in (b"node", b"worker", b"payout_lane", b"psp", b"tasks", b"outbox-refused"):
        assert b'data-item="' + key + b'"' in attention, key
    assert f"/admin/orders/outboxmessage/{refused.pk}/change/".encode() in attention
    assert b"HTTP 404" in attention


def test_a_backing_up_outbox_is_amber_and_waits_for_a_person() -> None:
    all_is_well()
    row = OutboxMessage.objects.create(
        kind=OutboxKind.BALANCES, dedupe_key="b:1", path="balances", payload={}
    )
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=10))

    items = {item.key: item for item in health_strip.strip_items()}

    assert (items["outbox"].level, items["outbox"].value) == ("warn", "1 pending (backing up)")
    assert items["outbox"].needs_person


def test_the_strip_is_a_handful_of_queries_whatever_the_load(django_assert_max_num_queries: Any) -> None:
    all_is_well()
    for n in range(20):
        refused_cancel()
        PspCircuit.objects.create(psp=f"psp{n}", state=CircuitState.OPEN)

    with django_assert_max_num_queries(8):
        health_strip.strip_items()


def test_no_strip_before_login(client: Client) -> None:
    page = client.get("/admin/login/")

    assert page.status_code == 200
    assert b'id="health-strip"' not in page.content


@pytest.mark.parametrize("role", ["viewer", "operator", "payer"])
def test_every_strip_link_opens_its_list_for_each_order_role(role: str) -> None:
    user = User.objects.create_user(username=f"{role}-1", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = admin_client(user)
    links = [url for _level, url in strip(client.get("/admin/").content).values()]

    answers = {url: client.get(url, follow=True).status_code for url in links}

    assert answers == dict.fromkeys(links, 200)
