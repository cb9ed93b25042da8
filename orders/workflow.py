"""An order's journey, state by state: which public service runs next, and in which lane.

Two lanes that never wait on each other (docs/operations.md, "Processes"):

**Accept lane** (django-q2: deciding and the accept call, never a PSP call or a delivery)::

    received   --order_decide-->                 declined | expired | waits for staff | accepting (reserved)
    accepting  --order_accept_with_aggregator--> accepted (payout due) | held | lost
               (no answer: tried again at once, ``ACCEPT_ATTEMPTS`` in all; then, after the window, the
               aggregator's order list decides: ``order_accept_settle``)

**Payout lane** (``orders.payout_lane``: PSP calls and deliveries to the aggregator, many in flight)::

    every transition's outbox rows (decline, fulfil, cancel, balances) --outbox delivery--> the aggregator

    accepted, payout due --order_start_payout--> paying (a transfer at a healthy PSP)
                                                 | held (the name check says so)
        (no PSP takes payouts: due again in NO_PSP_RETRY, cancelled after UNROUTABLE_CANCEL_AFTER)
    transfer due --psp transfer_call--> answer --order_apply_psp_answer-->
        paying -> paid (fulfil success queued) | cancelled (failed, fulfil failed) | needs_review
        paying -> accepted, payout due again (refused before money moved: the next PSP tries)
    PSP balances, every BALANCE_SYNC_INTERVAL --balances_sync_psp--> recorded with the drift from the
        ledger (and a balance report); staff book a drift, the sync never changes the ledger

**Staff** (admin) and **timers** (the minute sweep): approve and pay held orders, cancel, mark paid,
resolve reviews, expire offers and held payouts; the sweep queues whatever a lost task left undone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from balances import selectors as balance_selectors
from balances import services as balance_services
from orders import services as order_services
from orders.clients.aggregator import AggregatorUnavailable
from orders.models import Order, OrderStatus
from provision import queue, scheduling
from psp import services as psp_services
from psp.base import PspError

logger = logging.getLogger(__name__)

ACCEPT_ATTEMPTS = 3
UNROUTABLE_CANCEL_AFTER = timedelta(minutes=5)
NO_PSP_RETRY = timedelta(seconds=30)
NO_PSP_REASON = "No payout provider available"


# --- accept lane ---------------------------------------------------------------------------------------


def order_advance(*, order_pk: int) -> str:
    """A received order: decide, and accept with the aggregator when the node takes it."""
    order = order_services.order_decide(order_pk=order_pk)
    if order.status == OrderStatus.ACCEPTING:
        order = order_accept(order_pk=order_pk)
    return order.status


def order_accept(*, order_pk: int) -> Order:
    """Accept with the aggregator. No answer: queue another attempt at once while attempts are left and
    the window is open; otherwise the order list decides once the window has closed."""
    try:
        return order_services.order_accept_with_aggregator(order_pk=order_pk)
    except AggregatorUnavailable:
        order = Order.objects.get(pk=order_pk)
    if order.status != OrderStatus.ACCEPTING:
        return order
    if order.accept_attempts < ACCEPT_ATTEMPTS and timezone.now() < order.accept_deadline:
        queue.enqueue("orders.tasks.order_accept", task_name=f"accept:{order_pk}", order_pk=order_pk)
    else:
        scheduling.run_at(
            "orders.tasks.order_accept_settle",
            name=f"accept_settle:{order_pk}",
            when=order.accept_deadline + order_services.ACCEPT_SETTLE_MARGIN,
            order_pk=order_pk,
        )
    return order


def order_accept_settle(*, order_pk: int) -> str:
    """After the window: the aggregator's order list decides an accept whose answer was lost."""
    try:
        return order_services.order_accept_with_aggregator(order_pk=order_pk).status
    except AggregatorUnavailable:
        return "retry"  # the sweep asks again


# --- payout lane ---------------------------------------------------------------------------------------


def payout_start(*, order_pk: int) -> str:
    """Start the payout of an accepted order whose payout is due (the payout lane's claim)."""
    try:
        return order_services.order_start_payout(order_pk=order_pk).status
    except psp_services.NoPspAvailable:
        order = Order.objects.get(pk=order_pk)
        waited = timezone.now() - (order.accepted_at or order.updated_at)
        if order.status == OrderStatus.ACCEPTED and waited > UNROUTABLE_CANCEL_AFTER:
            # Given back with a reason, so the aggregator can reassign it inside its refund window.
            return order_services.order_cancel(order_pk=order_pk, reason=NO_PSP_REASON, actor=None).status
        return order_services.order_payout_later(order_pk=order_pk, when=timezone.now() + NO_PSP_RETRY).status
    except order_services.OrderTransitionNotAllowed as exc:
        logger.info("payout.start_skipped", extra={"order_pk": order_pk, "reason": exc.message})
        return "skipped"


def payout_step(*, transfer_pk: int) -> str:
    """Send the transfer or read it (no lock held), then make its order follow the answer."""
    answer = psp_services.transfer_call(transfer_pk=transfer_pk)
    return order_services.order_apply_psp_answer(transfer_pk=transfer_pk, answer=answer).status


def balances_sync_psp(*, psp: str) -> list[str] | None:
    """Read one PSP's balances and record them with the drift from the ledger (the ledger itself is not
    changed: staff book a drift, ``balances.services.balance_drift_book``); report the currencies synced
    to the aggregator. None when the read failed (the payout lane retries it within seconds)."""
    # Where the ledger stands before the read: what the readings can have seen (no lock over the HTTP).
    ledger_seqs = balance_selectors.ledger_seqs(currencies=settings.CURRENCIES)
    try:
        readings = psp_services.psp_balances_read(psp=psp)
    except PspError as exc:
        logger.warning("balance.sync_failed", extra={"psp": psp, "error": exc.message[:200]})
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
    balances_report(currencies=synced)
    return synced


def balances_report(*, currencies: list[str]) -> None:
    """Queue a balance report to the aggregator for each currency (coalesced per currency)."""
    with transaction.atomic():
        for currency in currencies:
            order_services.outbox_enqueue_balance_report(currency=currency)
