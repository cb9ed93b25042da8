"""Events that need a person are told once by email and chat, with a link; retries and rescans never repeat
them; a failed chat post is retried without mailing again; the hourly rate limit folds the rest into a digest.

The chat webhook is a real local HTTP server; email goes to Django's locmem backend (``mail.outbox``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone
from django_q.models import Success
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from orders import services
from orders.models import Order, OrderStatus, OutboxKind, OutboxMessage, OutboxStatus
from orders.tests.conftest import AggregatorFake, accept_data
from orders.tests.factories import OrderFactory
from provision import notify
from provision.models import Heartbeat, Notification, NotificationKind
from psp.models import CircuitState, PspCircuit

pytestmark = pytest.mark.django_db


class ChatFake:
    """A Slack-compatible incoming webhook on loopback: records each ``{"text": ...}`` it accepts."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.texts: list[str] = []
        self.fail_next = 0

    def handler(self, request: Request) -> Response:
        if self.fail_next:
            self.fail_next -= 1
            return Response("busy", status=503)
        body = json.loads(request.get_data())
        assert set(body) == {"text"}
        self.texts.append(body["text"])
        return Response("ok", status=200)


@pytest.fixture
def chat(httpserver: HTTPServer, settings: Any) -> ChatFake:
    fake = ChatFake(httpserver)
    httpserver.expect_request("/hooks/chat", method="POST").respond_with_handler(fake.handler)
    settings.NOTIFY_CHAT_WEBHOOK_URL = httpserver.url_for("/hooks/chat")
    settings.NOTIFY_EMAIL_TO = ["ops@example.com"]
    settings.ADMIN_BASE_URL = "https://node.example.com"
    return fake


@pytest.fixture
def worker_alive() -> None:
    now = timezone.now()
    Success.objects.create(id="a" * 32, name="sweep", func="orders.tasks.sweep", started=now, stopped=now)


def order_in(status: str) -> Order:
    order = OrderFactory.create()
    Order.objects.filter(pk=order.pk).update(status=status)
    return order


def held() -> str:
    return f"/admin/orders/order/{order_in(OrderStatus.HELD).pk}/change/"


def review() -> str:
    return f"/admin/orders/order/{order_in(OrderStatus.NEEDS_REVIEW).pk}/change/"


def reversal() -> str:
    return f"/admin/orders/order/{order_in(OrderStatus.REVERSED).pk}/change/"


def circuit_open() -> str:
    PspCircuit.objects.create(psp="sandbox", state=CircuitState.OPEN, opened_at=timezone.now())
    return "/admin/psp/pspcircuit/"


def outbox_refused() -> str:
    order = order_in(OrderStatus.CANCELLED)
    row = OutboxMessage.objects.create(
        kind=OutboxKind.CANCEL,
        order=order,
        dedupe_key=f"cancel:{order.order_id}",
        path=f"orders/{order.order_id}/cancel",
        payload={"reason": "x"},
        status=OutboxStatus.REFUSED,
        last_status_code=404,
    )
    return f"/admin/orders/outboxmessage/{row.pk}/change/"


def outbox_backlog() -> str:
    row = OutboxMessage.objects.create(
        kind=OutboxKind.BALANCES, dedupe_key="balances:1", path="balances", payload={}
    )
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    return "/admin/orders/outboxmessage/?status__exact=pending"


def critical_balance(settings: Any) -> str:
    settings.CRITICAL_BALANCE_THRESHOLD = {"NGN": Decimal("500")}
    return "/admin/balances/balance/"


def worker_silent() -> str:
    Success.objects.all().delete()
    return "/admin/django_q/success/"


def payout_lane_silent() -> str:
    Heartbeat.objects.create(name="payout_lane", beat_at=timezone.now() - timedelta(minutes=10))
    return "/admin/provision/heartbeat/"


EVENTS: dict[str, tuple[Callable[..., str], str]] = {
    "held": (held, NotificationKind.HELD),
    "review": (review, NotificationKind.REVIEW),
    "reversal": (reversal, NotificationKind.REVERSED),
    "circuit_open": (circuit_open, NotificationKind.CIRCUIT_OPEN),
    "outbox_refused": (outbox_refused, NotificationKind.OUTBOX_REFUSED),
    "outbox_backlog": (outbox_backlog, NotificationKind.OUTBOX_BACKLOG),
    "critical_balance": (critical_balance, NotificationKind.BALANCE_CRITICAL),
    "worker_silent": (worker_silent, NotificationKind.WORKER_SILENT),
    "payout_lane_silent": (payout_lane_silent, NotificationKind.PAYOUT_LANE_SILENT),
}


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_each_event_sends_one_notification_with_its_link_however_often_it_is_seen(
    event: str, chat: ChatFake, worker_alive: None, settings: Any
) -> None:
    arrange, kind = EVENTS[event]
    path = arrange(settings) if event == "critical_balance" else arrange()

    for _ in range(3):  # the worker's minute scan, the payout lane's, a retried task
        notify.notifications_watch()
        notify.notifications_send()

    assert list(Notification.objects.values_list("kind", flat=True)) == [kind]
    link = f"https://node.example.com{path}"
    assert len(chat.texts) == 1
    assert chat.texts[0].endswith(link)
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert mail.outbox[0].body.endswith(link)


def test_an_event_that_clears_and_comes_back_is_told_again(chat: ChatFake, worker_alive: None) -> None:
    circuit_open()
    notify.notifications_watch()
    PspCircuit.objects.filter(psp="sandbox").update(state=CircuitState.CLOSED)
    notify.notifications_watch()
    PspCircuit.objects.filter(psp="sandbox").update(state=CircuitState.OPEN)

    notify.notifications_watch()

    assert Notification.objects.filter(kind=NotificationKind.CIRCUIT_OPEN).count() == 2
    assert (
        Notification.objects.filter(kind=NotificationKind.CIRCUIT_OPEN, resolved_at__isnull=True).count() == 1
    )
    assert len(chat.texts) == 2


def test_a_failed_chat_post_is_retried_later_without_mailing_twice(
    chat: ChatFake, worker_alive: None, settings: Any, caplog: Any
) -> None:
    chat.fail_next = 1
    held()
    notify.notifications_scan()

    notify.notifications_send()
    notification = Notification.objects.get()
    first = (notification.sent_at, notification.attempts, len(chat.texts), len(mail.outbox))
    assert notification.last_error == "chat: HTTPError"  # the webhook URL is a credential: never recorded
    assert settings.NOTIFY_CHAT_WEBHOOK_URL not in caplog.text
    notify.notifications_send()  # not due yet: backs off
    notify.notifications_send(now=timezone.now() + timedelta(minutes=2))

    notification.refresh_from_db()
    assert first == (None, 1, 0, 1)
    assert (notification.attempts, len(chat.texts), len(mail.outbox)) == (2, 1, 1)
    assert notification.sent_at is not None
    assert notification.last_error == ""


def test_over_the_hourly_rate_limit_the_rest_goes_out_as_one_digest(
    chat: ChatFake, worker_alive: None, settings: Any
) -> None:
    settings.NOTIFY_RATE_LIMIT = 3
    for _ in range(6):
        held()

    notify.notifications_watch()

    assert len(chat.texts) == 3
    assert "4 more events" in chat.texts[-1]
    assert Notification.objects.filter(folded_into__isnull=False).count() == 4
    held()
    notify.notifications_watch()  # the hour is used up: the new one waits
    assert len(chat.texts) == 3
    assert Notification.objects.filter(sent_at__isnull=True).count() == 1


def test_a_hold_is_recorded_in_its_own_transaction_and_sent_after_commit_once(
    aggregator: AggregatorFake,
    funded: None,
    chat: ChatFake,
    worker_alive: None,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.PROVISION_MODE = "manual"
    order = OrderFactory.create()
    services.order_decide(order_pk=order.pk)
    aggregator.on(f"/v1/provider/orders/{order.order_id}/accept", 201, accept_data(order.order_id))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.order_accept_with_aggregator(order_pk=order.pk)
    sent_by_the_queued_task = list(chat.texts)
    notify.notifications_watch()

    notification = Notification.objects.get()
    assert (notification.kind, notification.subject) == (NotificationKind.HELD, str(order.pk))
    assert callbacks
    assert len(sent_by_the_queued_task) == 1
    assert order.order_id in sent_by_the_queued_task[0]
    assert chat.texts == sent_by_the_queued_task


def test_without_channels_a_notification_is_recorded_and_marked_sent(worker_alive: None) -> None:
    held()

    notify.notifications_watch()

    notification = Notification.objects.get()
    assert notification.sent_at is not None
    assert mail.outbox == []


def test_a_rescan_costs_the_same_few_queries_however_many_orders_wait(
    worker_alive: None, django_assert_max_num_queries: Any
) -> None:
    for _ in range(30):
        held()
    notify.notifications_scan()

    with django_assert_max_num_queries(25):
        notify.notifications_scan()


def test_a_held_order_is_told_with_its_amount_written_as_admin_writes_it(worker_alive: None) -> None:
    order = OrderFactory.create(amount=Decimal("45000"), currency="NGN")
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.HELD)

    notify.notifications_watch()

    text = Notification.objects.get(kind=NotificationKind.HELD).text
    assert text == f"Payout held for approval: 45,000.00 NGN, order {order.order_id}"
