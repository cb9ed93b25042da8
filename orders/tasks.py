"""django-q2 jobs of the order pipeline: thin, safe to run twice (delivery is at least once)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orders import outbox, services
from orders.clients.aggregator import AggregatorUnavailable
from orders.models import Order, OrderStatus
from provision import queue, scheduling

logger = logging.getLogger(__name__)

ACCEPT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
# A queued task not done after django-q2's retry time was lost with its worker (Q_CLUSTER["retry"]).
QUEUED_TASK_LOST_AFTER = timedelta(seconds=120)
UNROUTABLE_CANCEL_AFTER = timedelta(minutes=5)
NO_PSP_REASON = "No payout provider available"


def order_process(*, order_pk: int) -> str:
    """Carry a received order along its automatic path as far as it goes now (``orders.pipeline``)."""
    from orders import pipeline

    return pipeline.order_advance(order_pk=order_pk)


def order_accept(*, order_pk: int, order: Order | None = None) -> Order:
    """Accept with the aggregator; retry unknown outcomes a few times while the window is open.

    ``order``: the order as the caller has just read it, to spare the first attempt a read."""
    for delay in (*ACCEPT_RETRY_DELAYS, None):
        try:
            return services.order_accept_with_aggregator(order_pk=order_pk, order=order)
        except AggregatorUnavailable:
            order = None  # read again before the next attempt
            order = Order.objects.get(pk=order_pk)
            remaining = (order.accept_deadline - timezone.now()).total_seconds()
            if delay is None or remaining < delay:
                break
            time.sleep(delay)  # bounded: at most ~7.5 s inside a 30 s window
    order = Order.objects.get(pk=order_pk)
    # Settled by the sweep once the window has closed (the order list tells whether it is ours).
    scheduling.run_at(
        "orders.tasks.order_accept_settle",
        name=f"accept_settle:{order_pk}",
        when=order.accept_deadline,
        order_pk=order_pk,
    )
    return order


def order_accept_settle(*, order_pk: int) -> str:
    try:
        return services.order_accept_with_aggregator(order_pk=order_pk).status
    except AggregatorUnavailable:
        return "retry"


def order_start_payout(*, order_pk: int) -> str:
    order = order_start_payout_step(order_pk=order_pk)
    if order is None:
        return "skipped"
    return "waiting_for_psp" if order.status == OrderStatus.ACCEPTED else order.status


def order_start_payout_step(*, order_pk: int) -> Order | None:
    """Start the payout of an accepted order; the order as it is left, or None when it could not be."""
    from psp.services import NoPspAvailable

    try:
        return services.order_start_payout(order_pk=order_pk)
    except NoPspAvailable:
        # Every PSP that could pay is unhealthy: wait a little (circuits half-open after a cooldown), then
        # give the order back with a reason so the aggregator can reassign it inside its refund window.
        order = Order.objects.get(pk=order_pk)
        waited = timezone.now() - (order.accepted_at or order.updated_at)
        if order.status == OrderStatus.ACCEPTED and waited > UNROUTABLE_CANCEL_AFTER:
            return services.order_cancel(order_pk=order_pk, reason=NO_PSP_REASON, actor=None)
        return order  # waiting for a PSP
    except services.OrderTransitionNotAllowed as exc:
        logger.info("payout.start_skipped", extra={"order_pk": order_pk, "reason": exc.message})
        return None


def outbox_deliver_due() -> int:
    delivered = outbox.outbox_deliver_due()
    next_due = outbox.outbox_next_due_at()
    if next_due is not None:
        scheduling.run_at("orders.tasks.outbox_deliver_due", name="outbox_retry", when=next_due)
    return delivered


# A received order whose task should have run by now (queued and not picked up, or never queued).
RECEIVED_LATE_AFTER = timedelta(seconds=10)


@dataclass(frozen=True)
class DueTask:
    func: str
    name: str
    kwargs: dict[str, Any]


def due_work(*, now: datetime, received_late_after: timedelta = RECEIVED_LATE_AFTER) -> list[DueTask]:
    """The tasks a lost kick or a crash may have left undone: late received orders, accepts past their
    window, accepted orders not paying, transfers due for a check, and the outbox."""
    from psp import services as psp_services

    work: list[DueTask] = []
    if not (settings.PROVISION_MODE == "manual" and settings.MANUAL_POLICY == "staff"):
        received = Order.objects.filter(
            status=OrderStatus.RECEIVED, accept_deadline__gt=now, received_at__lte=now - received_late_after
        ).filter(Q(queued_at__isnull=True) | Q(queued_at__lt=now - QUEUED_TASK_LOST_AFTER))
        for pk in received.values_list("pk", flat=True)[:100]:
            work.append(DueTask("orders.tasks.order_process", f"sweep:order_process:{pk}", {"order_pk": pk}))
    settle_before = now - services.ACCEPT_SETTLE_MARGIN
    accepting = Order.objects.filter(status=OrderStatus.ACCEPTING, accept_deadline__lt=settle_before)
    for pk in accepting.values_list("pk", flat=True)[:100]:
        work.append(
            DueTask("orders.tasks.order_accept_settle", f"sweep:accept_settle:{pk}", {"order_pk": pk})
        )
    stale = now - timedelta(seconds=30)
    accepted = Order.objects.filter(status=OrderStatus.ACCEPTED, updated_at__lt=stale)
    for order in accepted[:100]:
        if not services._needs_staff_approval(order):
            work.append(
                DueTask("orders.tasks.order_start_payout", f"sweep:payout:{order.pk}", {"order_pk": order.pk})
            )
    for pk in psp_services.transfers_due_for_check(now=now):
        work.append(DueTask("psp.tasks.transfer_check", f"sweep:transfer_check:{pk}", {"transfer_pk": pk}))
    work.append(DueTask("orders.tasks.outbox_deliver_due", "sweep:outbox", {}))
    return work


def sweep() -> dict[str, int]:
    """The safety net, every minute: expire what is overdue and queue whatever a lost kick or a crash left
    behind. It calls no aggregator or PSP itself, so an outage cannot stall it; every task it queues is
    safe beside a run already queued (accepts are claimed per order, sends leased per transfer)."""
    now = timezone.now()
    counts = {"expired": services.order_expire_due(now=now), "queued": 0}
    for task in due_work(now=now):
        queue.enqueue(task.func, task_name=task.name, **task.kwargs)
        counts["queued"] += 1
    return counts


BALANCE_SYNC_RETRY_CAP_SECONDS = 60


def balance_sync_retry_delay(*, attempt: int) -> int | None:
    """Seconds before retry ``attempt`` (1, 2, ...) of a failed PSP balance read: 2, 4, 8 ... capped at a
    minute; None once the retries would reach the next regular sync (``BALANCE_SYNC_INTERVAL``)."""
    waited, delay = 0, 0
    for n in range(1, attempt + 1):
        delay = min(2**n, BALANCE_SYNC_RETRY_CAP_SECONDS)
        waited += delay
    if attempt < 1 or waited >= settings.BALANCE_SYNC_INTERVAL:
        return None
    return delay


def _psp_balances_sync(*, psp: str, attempt: int) -> list[str] | None:
    """Read one PSP's balances and apply them: the currencies synced, or None when the read failed (then
    the next retry of this PSP alone is queued, within seconds, while one is due before the next sync)."""
    from balances import selectors as balance_selectors
    from balances import services as balance_services
    from psp import services as psp_services
    from psp.base import PspError

    # Where the ledger stands before the read: what the readings can have seen (no lock over the HTTP).
    ledger_seqs = balance_selectors.ledger_seqs(currencies=settings.CURRENCIES)
    try:
        readings = psp_services.psp_balances_read(psp=psp)
    except PspError as exc:
        retry = attempt + 1
        delay = balance_sync_retry_delay(attempt=retry)
        logger.warning(
            "balance.sync_failed",
            extra={"psp": psp, "attempt": attempt, "retry_in_seconds": delay, "error": exc.message[:200]},
        )
        if delay is None:
            logger.warning("balance.sync_retries_exhausted", extra={"psp": psp, "attempt": attempt})
            return None
        scheduling.run_soon(
            "orders.tasks.balances_sync_retry",
            name=f"balances_sync_retry:{psp}",
            when=timezone.now() + timedelta(seconds=delay),
            psp=psp,
            attempt=retry,
        )
        return None
    synced: list[str] = []
    for reading in readings:
        if reading.currency in settings.CURRENCIES:
            balance_services.balance_sync_psp(
                psp=psp,
                currency=reading.currency,
                total=reading.total,
                available=reading.available,
                ledger_seq_at_read=ledger_seqs[reading.currency],
            )
            synced.append(reading.currency)
    return synced


def _balances_report(currencies: list[str]) -> None:
    from django.db import transaction

    from orders.outbox import outbox_enqueue_balance_report

    with transaction.atomic():
        for currency in currencies:
            outbox_enqueue_balance_report(currency=currency)


def balances_sync() -> int:
    """Read every enabled PSP's balance, record it, and report balances to the aggregator.

    A PSP whose read fails is retried alone, within seconds and with backoff (``balances_sync_retry``)."""
    from psp import registry

    synced = 0
    for adapter in registry.enabled():
        currencies = _psp_balances_sync(psp=adapter.name, attempt=0)
        synced += len(currencies or [])
    _balances_report(list(settings.CURRENCIES))
    return synced


def balances_sync_retry(*, psp: str, attempt: int) -> str:
    """Retry ``attempt`` of a PSP's failed balance read: "synced" (and reported), "failed" (the next retry
    is queued while one is due before the regular sync) or "skipped" (the PSP is no longer enabled)."""
    from psp import registry

    if psp not in {adapter.name for adapter in registry.enabled()}:
        logger.info("balance.sync_retry_skipped", extra={"psp": psp, "attempt": attempt})
        return "skipped"
    currencies = _psp_balances_sync(psp=psp, attempt=attempt)
    if currencies is None:
        return "failed"
    _balances_report(currencies)
    logger.info("balance.sync_retry_succeeded", extra={"psp": psp, "attempt": attempt})
    return "synced"


def purge_used_signatures() -> int:
    from provision.models import UsedSignature

    cutoff = timezone.now() - timedelta(seconds=settings.HMAC_TIMESTAMP_AGE + settings.HMAC_FUTURE_SKEW + 60)
    deleted, _ = UsedSignature.objects.filter(seen_at__lt=cutoff).delete()
    return deleted


TASK_RESULTS_MAX_AGE = timedelta(days=1)


def purge_task_results() -> int:
    """Delete successful task results older than a day (the worker heartbeat only needs the newest)."""
    from django_q.models import Success

    deleted, _ = Success.objects.filter(stopped__lt=timezone.now() - TASK_RESULTS_MAX_AGE).delete()
    return deleted
