"""GET /health/live (process up, no database) and GET /health/ready (503 listing what fails)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from provision import health
from provision.models import Heartbeat
from psp.models import CircuitState, PspCircuit


def finished_task(seconds_ago: float) -> None:
    from django_q.models import Success

    stopped = timezone.now() - timedelta(seconds=seconds_ago)
    Success.objects.create(
        id=f"{int(seconds_ago * 1000):032d}",
        name="sweep",
        func="orders.tasks.sweep",
        started=stopped - timedelta(seconds=1),
        stopped=stopped,
        success=True,
    )


def lane_beat(seconds_ago: float) -> None:
    Heartbeat.objects.update_or_create(
        name="payout_lane", defaults={"beat_at": timezone.now() - timedelta(seconds=seconds_ago)}
    )


def test_live_answers_without_touching_the_database(
    client: Client, django_assert_num_queries: Any, db: None
) -> None:
    with django_assert_num_queries(0):
        response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": "Alive", "data": {}}


@pytest.mark.django_db
def test_ready_when_database_migrations_psp_and_worker_are_fine(client: Client) -> None:
    finished_task(seconds_ago=20)
    lane_beat(seconds_ago=1)

    response = client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["message"], body["data"]["failing"]) == ("success", "Ready", [])
    checks = body["data"]["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["migrations"] == {"ok": True, "unapplied": 0}
    assert checks["psp"] == {"ok": True, "psps": {"sandbox": {"circuit": "closed", "takesNewPayouts": True}}}
    assert checks["worker"]["ok"] is True
    assert checks["worker"]["maxAgeSeconds"] == 180


@pytest.mark.django_db
def test_worker_that_never_ran_a_task_makes_the_node_not_ready(client: Client) -> None:
    lane_beat(seconds_ago=1)

    response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["message"], body["data"]["failing"]) == ("error", "Not ready", ["worker"])
    assert body["data"]["checks"]["worker"] == {"ok": False, "lastTaskAt": None, "maxAgeSeconds": 180}


@pytest.mark.django_db
def test_worker_heartbeat_older_than_the_limit_makes_the_node_not_ready(
    client: Client, settings: Any
) -> None:
    settings.WORKER_HEARTBEAT_MAX_AGE = 60
    finished_task(seconds_ago=61)
    lane_beat(seconds_ago=1)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["data"]["failing"] == ["worker"]
    assert response.json()["data"]["checks"]["worker"]["ok"] is False


@pytest.mark.django_db
def test_unapplied_migrations_make_the_node_not_ready(client: Client, monkeypatch: Any) -> None:
    from django.db.migrations.executor import MigrationExecutor

    class Pending:
        app_label, name = "orders", "0099_future"

    monkeypatch.setattr(health, "_migrations_ok_until", 0.0)
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [(Pending(), False)])
    finished_task(seconds_ago=1)
    lane_beat(seconds_ago=1)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["data"]["failing"] == ["migrations"]
    assert response.json()["data"]["checks"]["migrations"] == {
        "ok": False,
        "unapplied": 1,
        "first": ["orders.0099_future"],
    }


@pytest.mark.django_db
def test_unreachable_database_fails_every_check_that_needs_it(client: Client, monkeypatch: Any) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(health, "_migrations_ok_until", 0.0)
    monkeypatch.setattr(health.connection, "cursor", refuse)
    monkeypatch.setattr(health, "worker_last_task_at", refuse)
    monkeypatch.setattr("psp.health.psp_health", refuse)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["data"]["failing"] == ["database", "migrations", "psp", "worker", "payout_lane"]
    assert response.json()["data"]["checks"]["database"] == {"ok": False, "error": "OperationalError"}


@pytest.mark.django_db
def test_every_psp_circuit_open_makes_the_node_not_ready(client: Client) -> None:
    finished_task(seconds_ago=1)
    lane_beat(seconds_ago=1)
    PspCircuit.objects.create(psp="sandbox", state=CircuitState.OPEN, opened_at=timezone.now())

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["data"]["failing"] == ["psp"]
    assert response.json()["data"]["checks"]["psp"] == {
        "ok": False,
        "psps": {"sandbox": {"circuit": "open", "takesNewPayouts": False}},
    }


@pytest.mark.django_db
def test_ready_runs_only_the_checks_asked_for(client: Client) -> None:
    response = client.get("/health/ready", {"checks": "database,migrations"})

    assert response.status_code == 200
    assert list(response.json()["data"]["checks"]) == ["database", "migrations"]


def test_unknown_check_name_is_a_400(client: Client) -> None:
    response = client.get("/health/ready", {"checks": "database,disk"})

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "message": "Unknown check",
        "data": {"code": "invalid", "errors": {"checks": ["Unknown check: disk."]}},
    }


@pytest.mark.django_db
def test_a_payout_lane_that_never_beat_makes_the_node_not_ready(client: Client) -> None:
    finished_task(seconds_ago=1)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["data"]["failing"] == ["payout_lane"]
    assert response.json()["data"]["checks"]["payout_lane"] == {
        "ok": False,
        "lastBeatAt": None,
        "maxAgeSeconds": 60,
    }


@pytest.mark.django_db
def test_a_payout_lane_heartbeat_older_than_the_limit_makes_the_node_not_ready(client: Client) -> None:
    finished_task(seconds_ago=1)
    lane_beat(seconds_ago=61)

    response = client.get("/health/ready?checks=payout_lane")

    assert response.status_code == 503
    assert response.json()["data"]["checks"]["payout_lane"]["ok"] is False
