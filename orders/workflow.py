"""An order's journey, state by state: which public service runs next, and in which lane.

Two lanes that never wait on each other, both threads of one process (``orders.payout_lane``; see
docs/operations.md, "Processes"), each claiming due rows from the database:

**Accept lane** (the accept threads: deciding and the accept call, never a PSP call or a delivery)::

    received, accept due   --order_decide-->   declined | expired | waits for staff | accepting (reserved)
    accepting, accept due  --order_accept_with_aggregator--> accepted (payout due) | held | lost
               (no answer: due again at once, ``ACCEPT_ATTEMPTS`` in all; then, after the window, the
               aggregator's order list decides, asked again every ``SETTLE_RETRY``)

**Payout lane** (the payout threads: PSP calls and deliveries to the aggregator, many in flight)::

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
resolve reviews, expire offers and held payouts; the sweep makes due what waits for nobody.
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
from provision import request_context
from psp import services as psp_services
from psp.base import PspError

logger = logging.getLogger(__name__)

ACCEPT_ATTEMPTS = 3
SETTLE_RETRY = timedelta(seconds=30)
UNROUTABLE_CANCEL_AFTER = timedelta(minutes=5)
NO_PSP_RETRY = timedelta(seconds=30)
NO_PSP_REASON = "No payout provider available"


# --- accept: the lane's accept threads ------------------------------------------------------------------


def order_advance(*, order_pk: int) -> str:
    """An offer due in the lane (``accept_due_at``): decide it when received, then accept it. Its log lines
    and the accept call carry the id of the request that brought the offer in."""
    order = Order.objects.get(pk=order_pk)
    token = request_context.set_request_id(order.request_id or request_context.new_request_id())
    try:
        if order.status == OrderStatus.RECEIVED:
            order = order_services.order_decide(order_pk=order_pk)
        if order.status == OrderStatus.ACCEPTING:
            order = order_accept(order_pk=order_pk, order=order)
    finally:
        request_context.reset_request_id(token)
    return order.status


def order_accept(*, order_pk: int, order: Order | None = None) -> Order:
    """Accept with the aggregator (after the window: settle a lost accept from its order list). No answer:
    due again at once while attempts are left and the window is open; otherwise the list decides after
    the window, asked again every ``SETTLE_RETRY`` while the aggregator is away."""
    try:
        return order_services.order_accept_with_aggregator(order_pk=order_pk, order=order)
    except AggregatorUnavailable:
        order = Order.objects.get(pk=order_pk)
    if order.status != OrderStatus.ACCEPTING:
        return order
    now = timezone.now()
    if order.accept_attempts < ACCEPT_ATTEMPTS and now < order.accept_deadline:
        return order_services.order_accept_later(order_pk=order_pk, when=now)
    settle_at = order.accept_deadline + order_services.ACCEPT_SETTLE_MARGIN
    return order_services.order_accept_later(order_pk=order_pk, when=max(settle_at, now + SETTLE_RETRY))


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
