"""The health strip at the top of every admin page, and the non-order items of "Waiting for you".

One item per thing an ops person checks first: paused or running, mode and manual policy, the worker
(accept lane) and payout lane heartbeats, PSP circuits, the outbox, failed worker tasks, sandbox or live.
Each item has a level (``ok``, ``warn``, ``bad``; ``info`` for facts), a link to the list that explains it,
and ``needs_person`` when somebody must act: those items are also listed in the index's queue.

Cheap by design: seven small indexed queries (the runtime settings row is cached, see ``provision.runtime``),
no outbound HTTP, nothing computed over the order table. The PSP failure-rate window (``psp.health``) is
left to ``/health/ready``: the strip shows the circuits only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure

from orders.models import OutboxMessage, OutboxStatus
from provision import runtime
from provision.metrics_export import worker_last_task_at
from provision.models import Heartbeat, NodeControl
from psp.models import CircuitState, PspCircuit

OK, WARN, BAD, INFO = "ok", "warn", "bad", "info"


@dataclass(frozen=True)
class StripItem:
    key: str
    label: str
    value: str
    level: str
    url: str
    needs_person: bool = False
    hint: str = ""


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _heartbeat(
    key: str, label: str, beat: datetime | None, max_age: int, now: datetime, url: str, what: str
) -> StripItem:
    if beat is None:
        return StripItem(
            key, label, "never seen", BAD, url, True, f"{what} has never run against this database."
        )
    age = max((now - beat).total_seconds(), 0.0)
    if age > max_age:
        return StripItem(key, label, f"silent {_age(age)}", BAD, url, True, f"{what} is down or stuck.")
    return StripItem(key, label, f"{_age(age)} ago", OK, url)


def outbox_backlog_after() -> timedelta:
    return timedelta(seconds=settings.NOTIFY_OUTBOX_BACKLOG_AFTER)


def strip_items(*, now: datetime | None = None) -> list[StripItem]:
    """The strip's items, in display order."""
    now = now or timezone.now()
    control = NodeControl.objects.filter(pk=1).values_list("paused", "paused_reason").first()
    paused, reason = control or (False, "")
    rules = runtime.current()
    items = [
        StripItem(
            "node",
            "Node",
            f"paused{f': {reason}' if reason else ''}" if paused else "running",
            WARN if paused else OK,
            reverse("admin:provision_nodecontrol_changelist"),
            needs_person=bool(paused),
            hint="Every new offer is declined until someone resumes the node." if paused else "",
        ),
        StripItem(
            "mode",
            "Mode",
            f"manual ({rules.manual_policy})" if rules.provision_mode == "manual" else "auto",
            INFO,
            reverse("admin:provision_nodesettings_changelist"),
        ),
    ]
    items.append(
        _heartbeat(
            "worker",
            "Worker",
            worker_last_task_at(),
            settings.WORKER_HEARTBEAT_MAX_AGE,
            now,
            reverse("admin:django_q_success_changelist"),
            "The worker (django-q2: the sweep, purges, notifications)",
        )
    )
    lane_beat = Heartbeat.objects.filter(name="payout_lane").values_list("beat_at", flat=True).first()
    items.append(
        _heartbeat(
            "payout_lane",
            "Payout lane",
            lane_beat,
            settings.PAYOUT_LANE_HEARTBEAT_MAX_AGE,
            now,
            reverse("admin:provision_heartbeat_changelist"),
            "The lane (every accept and every PSP call)",
        )
    )
    circuits = dict(
        PspCircuit.objects.filter(psp__in=settings.PSP)
        .exclude(state=CircuitState.CLOSED)
        .values_list("psp", "state")
    )
    circuit_url = reverse("admin:psp_pspcircuit_changelist")
    if not circuits:
        items.append(StripItem("psp", "PSPs", f"{', '.join(settings.PSP)}: closed", OK, circuit_url))
    else:
        value = ", ".join(f"{psp} {state.replace('_', '-')}" for psp, state in sorted(circuits.items()))
        level = BAD if CircuitState.OPEN in circuits.values() else WARN
        items.append(
            StripItem(
                "psp",
                "PSPs",
                value,
                level,
                circuit_url,
                needs_person=True,
                hint="No new payouts go to a PSP whose circuit is open: check the PSP, close it once back.",
            )
        )
    outbox = OutboxMessage.objects.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.REFUSED]).aggregate(
        pending=Count("pk", filter=Q(status=OutboxStatus.PENDING)),
        refused=Count("pk", filter=Q(status=OutboxStatus.REFUSED)),
        oldest=Min("created_at", filter=Q(status=OutboxStatus.PENDING)),
    )
    outbox_url = reverse("admin:orders_outboxmessage_changelist")
    backlog = outbox["oldest"] is not None and outbox["oldest"] < now - outbox_backlog_after()
    if outbox["refused"]:
        items.append(
            StripItem(
                "outbox",
                "Outbox",
                f"{outbox['refused']} refused, {outbox['pending']} pending",
                BAD,
                f"{outbox_url}?status__exact={OutboxStatus.REFUSED}",
                needs_person=True,
                hint="The aggregator refused these calls for good: settle each with the aggregator, then "
                "abandon it or send it again.",
            )
        )
    else:
        items.append(
            StripItem(
                "outbox",
                "Outbox",
                f"{outbox['pending']} pending" + (" (backing up)" if backlog else ""),
                WARN if backlog else OK,
                f"{outbox_url}?status__exact={OutboxStatus.PENDING}",
                needs_person=backlog,
                hint="Calls to the aggregator have waited for minutes: is the aggregator reachable?"
                if backlog
                else "",
            )
        )
    failed = Failure.objects.count()
    items.append(
        StripItem(
            "tasks",
            "Failed tasks",
            str(failed),
            BAD if failed else OK,
            reverse("admin:django_q_failure_changelist"),
            needs_person=bool(failed),
            hint="Worker tasks that raised: read the error, then delete the row once handled."
            if failed
            else "",
        )
    )
    sandbox = "sandbox" in settings.PSP
    items.append(
        StripItem(
            "environment",
            "Environment",
            "sandbox" if sandbox else "live",
            WARN if sandbox else INFO,
            reverse("admin:provision_nodesettings_changelist"),
            hint="The sandbox PSP pays nobody: test money only." if sandbox else "",
        )
    )
    return items


@dataclass(frozen=True)
class RefusedCall:
    pk: int
    kind: str
    order_id: str
    status_code: int | None
    error: str
    url: str


def refused_outbox(*, limit: int = 20) -> tuple[list[RefusedCall], int]:
    """Outbox rows the aggregator refused for good (newest first), and how many there are."""
    rows = OutboxMessage.objects.filter(status=OutboxStatus.REFUSED)
    listed = [
        RefusedCall(
            pk=row.pk,
            kind=row.kind,
            order_id=row.order.order_id if row.order else "",
            status_code=row.last_status_code,
            error=row.last_error[:200],
            url=reverse("admin:orders_outboxmessage_change", args=[row.pk]),
        )
        for row in rows.select_related("order").order_by("-pk")[:limit]
    ]
    return listed, rows.count()
