"""Tell staff about events that need a person, by email and a Slack-compatible chat webhook.

Recording: ``notification_open`` writes a ``Notification`` in the caller's transaction (an order hold, or
the minute scan below) and queues the send with it. At most one open notification per (kind, subject) is
a database constraint, so an event seen again (a retry, the next scan) is never told twice; it is told
again only after its condition cleared (``resolved_at``) and came back.

Scanning (``notifications_scan``, every minute on the worker): opens a notification for each condition that
holds (held orders, orders in review, reversals, open PSP circuits, refused or backing-up outbox rows,
critical balances, a silent worker or payout lane) and resolves those whose condition cleared.

Sending (``notifications_send``, a task; never in a request, never under a row lock): claims due rows one
by one with a conditional UPDATE (a lease, so two workers never send one row), sends by email (Django's
mail backend) and chat (``requests``, with a timeout), and marks each channel on success, so a failed
chat post is retried later without mailing again. Over ``NOTIFY_RATE_LIMIT`` messages an hour, the rest of
a batch becomes one digest; with the hour used up, rows wait.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Min
from django.urls import reverse
from django.utils import timezone

from balances import selectors as balance_selectors
from orders.models import Order, OrderStatus, OutboxMessage, OutboxStatus
from provision import formatting, queue, runtime
from provision.metrics_export import worker_last_task_at
from provision.models import Heartbeat, NodeControl, Notification, NotificationKind
from psp.models import CircuitState, PspCircuit

logger = logging.getLogger(__name__)

CHAT_TIMEOUT = (3.05, 5)  # connect, read (seconds): the send runs on the worker, never for long
LEASE = timedelta(seconds=60)
RETRY_CAP = timedelta(hours=1)
BATCH = 50
SCAN_LIMIT = 200  # per kind and scan; more waits for the next minute

# Order status -> the notification it opens (and resolves when the order leaves that status).
ORDER_KINDS: dict[str, str] = {
    OrderStatus.HELD: NotificationKind.HELD,
    OrderStatus.NEEDS_REVIEW: NotificationKind.REVIEW,
    OrderStatus.REVERSED: NotificationKind.REVERSED,
}
ORDER_TEXT: dict[str, str] = {
    NotificationKind.HELD: "Payout held for approval: {amount} {currency}, order {order_id}, {reason}",
    NotificationKind.OFFER: "Offer waiting for staff: {amount} {currency}, order {order_id}",
    NotificationKind.REVIEW: "Payout needs review (outcome unknown): {amount} {currency}, order {order_id}",
    NotificationKind.REVERSED: "The PSP reversed a payout: {amount} {currency}, order {order_id}",
}


def link(path: str) -> str:
    return f"{settings.ADMIN_BASE_URL}{path}"


# --- recording --------------------------------------------------------------------------------------------


def notification_open(*, kind: str, subject: str, text: str, path: str) -> Notification | None:
    """Record an event once (None when it is already open) and queue its send with the caller's commit.

    Safe inside a caller's transaction and row lock: one INSERT in a savepoint, no I/O."""
    if Notification.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).exists():
        return None
    try:
        with transaction.atomic():
            notification = Notification.objects.create(kind=kind, subject=subject, text=text, path=path)
    except IntegrityError:
        return None  # another process opened it first
    queue.enqueue("provision.tasks.notifications_send", task_name=f"notify:{notification.pk}")
    logger.info("notification.opened", extra={"kind": kind, "subject": subject})
    return notification


def notification_open_for_order(*, order: Order, kind: str) -> Notification | None:
    text = ORDER_TEXT[kind].format(
        amount=formatting.money_amount(order.amount, order.currency),  # as every admin page writes it
        currency=order.currency,
        order_id=order.order_id,
        reason=f"approve by {order.hold_until:%H:%M:%S %Z}" if order.hold_until else "",
    )
    return notification_open(
        kind=kind,
        subject=str(order.pk),
        text=text.rstrip(", "),
        path=reverse("admin:orders_order_change", args=[order.pk]),
    )


def _open_subjects(kind: str) -> set[str]:
    return set(
        Notification.objects.filter(kind=kind, resolved_at__isnull=True).values_list("subject", flat=True)
    )


def _resolve(kind: str, still_open: set[str], now: datetime) -> int:
    return (
        Notification.objects.filter(kind=kind, resolved_at__isnull=True)
        .exclude(subject__in=still_open)
        .update(resolved_at=now)
    )


# --- scanning ---------------------------------------------------------------------------------------------


def notifications_scan(*, now: datetime | None = None) -> int:
    """Open a notification for each condition that needs a person; resolve the ones that cleared."""
    now = now or timezone.now()
    opened = 0
    kinds = dict(ORDER_KINDS)
    rules = runtime.current()
    staff_offers = rules.staff_policy and not NodeControl.objects.filter(pk=1, paused=True).exists()
    if staff_offers:
        kinds[OrderStatus.RECEIVED] = NotificationKind.OFFER
    for status, kind in kinds.items():
        orders = list(Order.objects.filter(status=status).order_by("pk")[:SCAN_LIMIT])
        told = _open_subjects(kind)
        for order in orders:
            if str(order.pk) not in told:
                opened += notification_open_for_order(order=order, kind=kind) is not None
        if len(orders) < SCAN_LIMIT:
            _resolve(kind, {str(order.pk) for order in orders}, now)
    if not staff_offers:
        _resolve(NotificationKind.OFFER, set(), now)

    conditions: dict[str, dict[str, tuple[str, str]]] = {kind: {} for kind in NotificationKind}
    circuit_path = reverse("admin:psp_pspcircuit_changelist")
    for psp in PspCircuit.objects.filter(state=CircuitState.OPEN).values_list("psp", flat=True):
        conditions[NotificationKind.CIRCUIT_OPEN][psp] = (
            f"PSP circuit opened for {psp}: no new payouts go to it until it answers again",
            circuit_path,
        )
    for row in OutboxMessage.objects.filter(status=OutboxStatus.REFUSED).select_related("order")[:SCAN_LIMIT]:
        about = f" for order {row.order.order_id}" if row.order else ""
        conditions[NotificationKind.OUTBOX_REFUSED][str(row.pk)] = (
            f"The aggregator refused a {row.kind}{about} for good "
            f"(HTTP {row.last_status_code or '-'}): settle it with the aggregator",
            reverse("admin:orders_outboxmessage_change", args=[row.pk]),
        )
    backlog = OutboxMessage.objects.filter(
        status=OutboxStatus.PENDING,
        created_at__lt=now - timedelta(seconds=settings.NOTIFY_OUTBOX_BACKLOG_AFTER),
    ).aggregate(n=Count("pk"), first=Min("pk"))
    if backlog["n"]:
        conditions[NotificationKind.OUTBOX_BACKLOG][str(backlog["first"])] = (
            f"{backlog['n']} calls to the aggregator have waited over "
            f"{settings.NOTIFY_OUTBOX_BACKLOG_AFTER} s: is the aggregator reachable?",
            f"{reverse('admin:orders_outboxmessage_changelist')}?status__exact=pending",
        )
    for currency, balance in balance_selectors.balances_by_currency().items():
        threshold = balance_selectors.threshold_for(currency=currency)
        if threshold is not None and balance.available < threshold:
            conditions[NotificationKind.BALANCE_CRITICAL][currency] = (
                f"{currency} balance is critical: {balance.available} available, threshold {threshold}",
                reverse("admin:balances_balance_changelist"),
            )
    last_task = worker_last_task_at()
    if last_task is None or (now - last_task).total_seconds() > settings.WORKER_HEARTBEAT_MAX_AGE:
        conditions[NotificationKind.WORKER_SILENT]["worker"] = (
            "The worker (django-q2) has finished no task for "
            f"{settings.WORKER_HEARTBEAT_MAX_AGE} s: the sweep and the purges are not running",
            reverse("admin:django_q_success_changelist"),
        )
    beat = Heartbeat.objects.filter(name="payout_lane").values_list("beat_at", flat=True).first()
    if beat is not None and (now - beat).total_seconds() > settings.PAYOUT_LANE_HEARTBEAT_MAX_AGE:
        conditions[NotificationKind.PAYOUT_LANE_SILENT]["payout_lane"] = (
            f"The payout lane has been silent since {beat:%H:%M:%S %Z}: no offer is accepted, no payout "
            "starts or settles",
            reverse("admin:provision_heartbeat_changelist"),
        )
    for kind, subjects in conditions.items():
        if kind in (*ORDER_KINDS.values(), NotificationKind.OFFER, NotificationKind.DIGEST):
            continue
        told = _open_subjects(kind) if subjects else set()
        for subject, (text, path) in subjects.items():
            if subject not in told:
                opened += notification_open(kind=kind, subject=subject, text=text, path=path) is not None
        _resolve(kind, set(subjects), now)
    return opened


# --- sending ----------------------------------------------------------------------------------------------


def _channels() -> tuple[bool, bool]:
    return bool(settings.NOTIFY_EMAIL_TO), bool(settings.NOTIFY_CHAT_WEBHOOK_URL)


def _message(notification: Notification) -> str:
    return f"[{settings.ADMIN_BASE_URL}] {notification.text}\n{link(notification.path)}"


def _send_one(notification: Notification, now: datetime) -> bool:
    """Send on each configured channel not yet done; True when all are done."""
    email, chat = _channels()
    errors = []
    if email and notification.email_sent_at is None:
        try:
            send_mail(
                subject=f"Provision node: {notification.get_kind_display()}",
                message=_message(notification),
                from_email=None,
                recipient_list=settings.NOTIFY_EMAIL_TO,
            )
        except Exception as exc:  # any mail backend error: retried later
            errors.append(f"email: {type(exc).__name__}: {exc}"[:300])
        else:
            notification.email_sent_at = timezone.now()
    if chat and notification.chat_sent_at is None:
        try:
            answer = requests.post(
                settings.NOTIFY_CHAT_WEBHOOK_URL, json={"text": _message(notification)}, timeout=CHAT_TIMEOUT
            )
            answer.raise_for_status()
        except requests.RequestException as exc:
            errors.append(f"chat: {type(exc).__name__}"[:300])
        else:
            notification.chat_sent_at = timezone.now()
    done = not errors
    notification.attempts += 1
    notification.last_error = "; ".join(errors)
    notification.sent_at = now if done else None
    notification.next_attempt_at = now + min(
        timedelta(seconds=30 * 2 ** min(notification.attempts, 10)), RETRY_CAP
    )
    notification.save(
        update_fields=[
            "email_sent_at",
            "chat_sent_at",
            "attempts",
            "last_error",
            "sent_at",
            "next_attempt_at",
        ]
    )
    if errors:
        logger.warning(
            "notification.send_failed", extra={"id": notification.pk, "errors": notification.last_error}
        )
    return done


def _claim(pk: int, due_at: datetime, now: datetime) -> bool:
    return bool(
        Notification.objects.filter(pk=pk, sent_at__isnull=True, next_attempt_at=due_at).update(
            next_attempt_at=now + LEASE
        )
    )


def notifications_send(*, now: datetime | None = None) -> int:
    """Send what is due, within the hourly rate limit; returns how many messages went out."""
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(sent_at__isnull=True, folded_into__isnull=True, next_attempt_at__lte=now)
        .order_by("pk")
        .values_list("pk", "next_attempt_at")[:BATCH]
    )
    claimed = [pk for pk, due_at in due if _claim(pk, due_at, now)]
    if not claimed:
        return 0
    used = Notification.objects.filter(
        sent_at__gte=now - timedelta(hours=1), folded_into__isnull=True
    ).count()
    budget = settings.NOTIFY_RATE_LIMIT - used
    if budget <= 0:
        Notification.objects.filter(pk__in=claimed).update(next_attempt_at=now + timedelta(minutes=5))
        logger.warning("notification.rate_limited", extra={"waiting": len(claimed)})
        return 0
    rows = list(Notification.objects.filter(pk__in=claimed).order_by("pk"))
    if len(rows) > budget:
        rows = [*rows[: budget - 1], _fold(rows[budget - 1 :], now)]
    return sum(_send_one(row, now) for row in rows)


def _fold(rows: list[Notification], now: datetime) -> Notification:
    """One digest for ``rows`` (the rate limit is reached); they count as told through it."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get_kind_display()] = counts.get(row.get_kind_display(), 0) + 1
    summary = ", ".join(f"{label}: {n}" for label, n in sorted(counts.items()))
    digest = Notification.objects.create(
        kind=NotificationKind.DIGEST,
        subject=f"{now:%Y%m%d%H%M%S.%f}",
        text=f"{len(rows)} more events (notification rate limit reached): {summary}",
        path=reverse("admin:provision_notification_changelist"),
        resolved_at=now,
    )
    Notification.objects.filter(pk__in=[row.pk for row in rows]).update(folded_into=digest, sent_at=now)
    return digest


def notifications_watch() -> int:
    """The scan, then the send: the worker's minute schedule and the payout lane both run it."""
    opened = notifications_scan()
    notifications_send()
    return opened
