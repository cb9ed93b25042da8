"""Transitions are logged by ``provision.fsm_log.InsertBackend``: the row django-fsm-log's own backend
writes, with one INSERT, in the transition's transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_fsm.signals import post_transition
from django_fsm_log.backends import SimpleBackend
from django_fsm_log.models import StateLog

from orders.models import Order, OrderStatus
from orders.tests.factories import OrderFactory
from provision.fsm_log import InsertBackend

pytestmark = pytest.mark.django_db


def logged(order: Order) -> list[dict[str, Any]]:
    return list(
        StateLog.objects.filter(object_id=order.pk).values(
            "by", "source_state", "state", "transition", "content_type", "description"
        )
    )


def test_it_is_the_backend_django_fsm_log_uses() -> None:
    receivers, _ = post_transition._live_receivers(Order)
    assert InsertBackend.post_transition_callback in receivers
    assert SimpleBackend.post_transition_callback not in receivers


def test_a_transition_writes_the_row_django_fsm_logs_own_backend_writes() -> None:
    staff = User.objects.create_user("ops")
    ours, theirs = OrderFactory.create_batch(2)
    ContentType.objects.get_for_model(Order)  # cached per process, as in a running node

    with CaptureQueriesContext(connection) as statements:
        ours.begin_accept(by=staff, description="Reserved; accepting with the aggregator")
    SimpleBackend.post_transition_callback(
        sender=Order, instance=theirs, name="begin_accept", source="received", target="accepting"
    )  # the ORM's row, for comparison (no by/description attached: set below)
    StateLog.objects.filter(object_id=theirs.pk).update(
        by=staff, description="Reserved; accepting with the aggregator"
    )

    assert [q["sql"].split()[0] for q in statements.captured_queries] == ["INSERT"]
    assert logged(ours) == logged(theirs) != []
    [row] = StateLog.objects.filter(object_id=ours.pk)
    assert (row.content_object, row.by, row.get_state_display()) == (ours, staff, "Accepting")
    assert row.timestamp is not None


def test_a_transition_without_staff_or_description_logs_them_as_null() -> None:
    order = OrderFactory.create()
    order.begin_accept()

    [row] = logged(order)
    assert (row["by"], row["source_state"], row["state"], row["description"]) == (
        None,
        OrderStatus.RECEIVED,
        OrderStatus.ACCEPTING,
        None,
    )


def test_a_rolled_back_transition_leaves_no_row() -> None:
    order = OrderFactory.create()

    def fails_after_the_transition() -> None:
        with transaction.atomic():
            order.begin_accept(description="then the transaction fails")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fails_after_the_transition()

    assert logged(order) == []


def test_ignored_models_are_not_logged(settings: Any) -> None:
    settings.DJANGO_FSM_LOG_IGNORED_MODELS = ["orders.models.Order"]
    order = OrderFactory.create()
    order.begin_accept()

    assert logged(order) == []
