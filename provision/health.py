"""Liveness and readiness probes (``GET /health`` stays the contract's answer, in ``provision.views``).

``GET /health/live``   the process answers HTTP; touches nothing else (no database). Restart on failure.
``GET /health/ready``  the node can do its work: 200 when every check passes, else 503 with the failing
                       checks listed. ``?checks=database,migrations`` runs only the named ones.

Checks
``database``    a ``SELECT 1`` on the default connection.
``migrations``  no migration of the code is unapplied in the database (a positive answer is cached
                per process for ``MIGRATIONS_CACHE_SECONDS``: the migration graph is read from disk).
``psp``         at least one enabled PSP takes new payouts (its circuit breaker is closed or due a
                probe, and its recent failure rate is under the limit: ``psp.health``), and no payout
                waits at its PSP for a one-time password (Paystack with transfer OTP on: the operator
                must turn it off; such a payout is pending, never failed, until Paystack abandons it);
                each PSP's circuit state is listed either way, with ``waitingForOtp`` and
                ``waitingForOtpSince`` when it holds such payouts.
``worker``      the django-q2 cluster finished a task within ``WORKER_HEARTBEAT_MAX_AGE`` seconds. The
                signal is the newest ``stopped`` time in django-q2's task result table (Success and
                Failure rows, written by the cluster's monitor process): it lives in the database every
                web replica reads, and the ``sweep`` schedule (every minute) guarantees a fresh row while
                any cluster runs. django-q2's own ``Stat`` is not used: it lives in the cache, which is
                per process with the default in-memory cache.
``payout_lane`` the payout lane (``manage.py payout_lane``) wrote its heartbeat (``Heartbeat``, every few
                seconds) within ``PAYOUT_LANE_HEARTBEAT_MAX_AGE`` seconds: without it no offer is accepted,
                no payout starts and no transfer is sent or read.

The worker and payout lane checks say nothing about this web process; an orchestrator that gates *traffic* on
readiness should use ``?checks=database,migrations`` (a dead worker must not stop ``/tx_status``
answers) and alert on the full check instead. See docs/operations.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from provision import responses
from provision.metrics_export import worker_last_task_at
from provision.models import Heartbeat
from provision.openapi import ERROR_ENVELOPE, envelope

MIGRATIONS_CACHE_SECONDS = 60.0
_migrations_ok_until = 0.0

Check = dict[str, Any]


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def check_migrations() -> Check:
    global _migrations_ok_until
    if time.monotonic() < _migrations_ok_until:
        return {"ok": True, "unapplied": 0}
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
        return {"ok": False, "unapplied": len(plan), "first": names[:5]}
    _migrations_ok_until = time.monotonic() + MIGRATIONS_CACHE_SECONDS
    return {"ok": True, "unapplied": 0}


def check_worker() -> Check:
    max_age = settings.WORKER_HEARTBEAT_MAX_AGE
    try:
        last = worker_last_task_at()
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__, "maxAgeSeconds": max_age}
    if last is None:
        return {"ok": False, "lastTaskAt": None, "maxAgeSeconds": max_age}
    age = max((timezone.now() - last).total_seconds(), 0.0)
    return {
        "ok": age <= max_age,
        "lastTaskAt": last.isoformat(),
        "ageSeconds": round(age, 1),
        "maxAgeSeconds": max_age,
    }


def check_psp() -> Check:
    from psp import health as psp_health

    try:
        states = psp_health.psp_health(psps=settings.PSP)
        waiting = psp_health.payouts_waiting_for_otp(psps=settings.PSP)
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    psps: dict[str, dict[str, Any]] = {
        name: {"circuit": str(state.circuit), "takesNewPayouts": state.takes_new_payouts}
        for name, state in states.items()
    }
    for name, (count, since) in waiting.items():
        psps[name] |= {"waitingForOtp": count, "waitingForOtpSince": since.isoformat()}
    return {"ok": any(p["takesNewPayouts"] for p in psps.values()) and not waiting, "psps": psps}


def check_payout_lane() -> Check:
    max_age = settings.PAYOUT_LANE_HEARTBEAT_MAX_AGE
    try:
        beat = Heartbeat.objects.filter(name="payout_lane").values_list("beat_at", flat=True).first()
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__, "maxAgeSeconds": max_age}
    if beat is None:
        return {"ok": False, "lastBeatAt": None, "maxAgeSeconds": max_age}
    age = max((timezone.now() - beat).total_seconds(), 0.0)
    return {
        "ok": age <= max_age,
        "lastBeatAt": beat.isoformat(),
        "ageSeconds": round(age, 1),
        "maxAgeSeconds": max_age,
    }


CHECKS: dict[str, Callable[[], Check]] = {
    "database": check_database,
    "migrations": check_migrations,
    "psp": check_psp,
    "worker": check_worker,
    "payout_lane": check_payout_lane,
}

_CHECK_SCHEMA = {
    "type": "object",
    "required": ["ok"],
    "properties": {"ok": {"type": "boolean"}},
    "additionalProperties": True,
}
_READY_DATA = {
    "type": "object",
    "required": ["checks", "failing"],
    "properties": {
        "checks": {"type": "object", "additionalProperties": _CHECK_SCHEMA},
        "failing": {"type": "array", "items": {"type": "string", "enum": list(CHECKS)}},
    },
}


class HealthLiveApi(APIView):
    @extend_schema(
        operation_id="health_live",
        summary="Liveness: the process answers (no database access)",
        tags=["health"],
        responses={
            200: OpenApiResponse(envelope({"type": "object", "properties": {}}), description="Alive"),
            429: ERROR_ENVELOPE,
        },
    )
    def get(self, request: Request) -> Response:
        return responses.success("Alive", {})


class HealthReadyApi(APIView):
    @extend_schema(
        operation_id="health_ready",
        summary="Readiness: database, migrations applied, a PSP taking payouts, worker and payout lane alive",
        tags=["health"],
        parameters=[
            OpenApiParameter(
                "checks",
                str,
                description=(
                    "Comma-separated subset of checks to run: database, migrations, psp, worker, payout_lane."
                ),
                required=False,
                pattern=(
                    r"^(database|migrations|psp|worker|payout_lane)(,(database|migrations|psp|worker|payout_lane))*$"
                ),
            )
        ],
        responses={
            200: OpenApiResponse(envelope(_READY_DATA), description="Every check passed"),
            400: ERROR_ENVELOPE,
            429: ERROR_ENVELOPE,
            503: OpenApiResponse(envelope(_READY_DATA, status="error"), description="A check failed"),
        },
    )
    def get(self, request: Request) -> Response:
        wanted = [name.strip() for name in request.query_params.get("checks", "").split(",") if name.strip()]
        unknown = [name for name in wanted if name not in CHECKS]
        if unknown:
            return responses.error(
                "Unknown check",
                {"code": "invalid", "errors": {"checks": [f"Unknown check: {', '.join(unknown)}."]}},
                status=400,
            )
        results = {name: CHECKS[name]() for name in (wanted or list(CHECKS))}
        failing = [name for name, result in results.items() if not result["ok"]]
        data = {"checks": results, "failing": failing}
        if failing:
            return responses.error("Not ready", data, status=503)
        return responses.success("Ready", data)
