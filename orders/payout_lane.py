"""The lane: every offer's decide and accept call, every PSP call and every delivery the node owes the
aggregator, many in flight at once, in threads of one process (``manage.py worker``; ``manage.py
payout_lane`` where it runs apart).

A real PSP takes seconds per payout call, and an aggregator a continent away a fifth of a second per
call. If those calls ran in a few worker processes, the next offer's accept would wait behind the previous
order's PSP call, and throughput would be processes ÷ latency. So one loop claims due work from the
database and hands each item to a pool of threads; each item is one call of a workflow function, in its
own transactions, with no lock held over HTTP. Threads, not processes: the work is waiting on the
network, and a thread costs a stack, not another interpreter's memory. Two pools, so an accept never
waits behind a payout:

* **accept threads** (``ACCEPT_LANE_THREADS``): offers due to be decided or accepted
  (``Order.accept_due_at``: due on arrival, again at once when an accept call got no answer, and after
  the window when the aggregator's order list must settle a lost accept): ``workflow.order_advance``;
* **payout threads** (``PAYOUT_LANE_THREADS``):

  - outbox rows due for delivery to the aggregator (fulfil, cancel, decline, balances; an order's rows
    one at a time, in order): ``outbox_deliver_claimed``;
  - accepted orders whose payout is due (``Order.payout_due_at``): ``workflow.payout_start``;
  - transfers due for a send or a read (``Transfer.next_check_at``): ``workflow.payout_step``. A webhook
    makes its transfer due at once; otherwise reads back off (2 s, then a quarter of the transfer's age,
    at most a minute);
  - each PSP's balances, every ``BALANCE_SYNC_INTERVAL`` seconds, retried after 2, 4, 8 ... s (at most a
    minute apart) when a read fails: ``workflow.balances_sync_psp``.

Claims take rows with ``SKIP LOCKED`` and a lease (``orders_claim_accept_due``,
``orders_claim_payout_due``, ``transfers_claim_due``, ``outbox_claim_due``), so several lanes on one
PostgreSQL never work on the same row, and a lane that dies loses nothing: its leases run out and another
lane (or this one, restarted) takes the rows again. A second accept call of an offer is further kept out
by its accept claim, a second send of a transfer by its send lease (``psp.services``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import structlog
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from orders import services as order_services
from orders import workflow
from provision import notify
from provision.models import Heartbeat
from psp import registry
from psp import services as psp_services

logger = logging.getLogger(__name__)

BALANCE_RETRY_CAP_SECONDS = 60.0
HEARTBEAT_EVERY_SECONDS = 5.0
# The lane also scans and sends notifications once a minute, so a silent worker is still reported (the
# worker's own minute scan cannot report itself) and notifications flow while either process runs.
NOTIFY_EVERY_SECONDS = 60.0
# After an item finishes, before looking for due work (PayoutLane.run): 0.1, not 0.05, since the lane
# also accepts: at 21 orders/s, half the looks left CPU for the work (steady bench: p95 accept 3.1 -> 1.5 s).
CLAIM_GATHER_SECONDS = 0.1
LANE = "payout_lane"


@dataclass
class BalanceTimer:
    """When each PSP's balances are read next (in this process: a lane that restarts reads them at once)."""

    due: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def due_now(self, now: float) -> list[str]:
        return [adapter.name for adapter in registry.enabled() if self.due.get(adapter.name, 0.0) <= now]

    def done(self, psp: str, *, ok: bool, now: float) -> None:
        if ok:
            self.failures.pop(psp, None)
            self.due[psp] = now + settings.BALANCE_SYNC_INTERVAL
            return
        failures = self.failures.get(psp, 0) + 1
        self.failures[psp] = failures
        self.due[psp] = now + min(2.0**failures, BALANCE_RETRY_CAP_SECONDS, settings.BALANCE_SYNC_INTERVAL)


def _run(work: Callable[[], object], what: str) -> None:
    """One item of work in a pool thread: its log lines say which item wrote them (``task``, as a
    django-q2 task's do); errors are logged (the item's lease makes it due again)."""
    bound = structlog.contextvars.bind_contextvars(task=what)
    try:
        work()
    except Exception:
        logger.exception("payout_lane.item_failed", extra={"item": what})
    finally:
        structlog.contextvars.reset_contextvars(**bound)
        close_old_connections()  # this thread's connection, as a request's end would (CONN_MAX_AGE)


def _advance(order_pk: int) -> Callable[[], object]:
    return lambda: workflow.order_advance(order_pk=order_pk)


def _deliver(message_id: int) -> Callable[[], object]:
    return lambda: order_services.outbox_deliver_claimed(message_id=message_id)


def _start(order_pk: int) -> Callable[[], object]:
    return lambda: workflow.payout_start(order_pk=order_pk)


def _step(transfer_pk: int) -> Callable[[], object]:
    return lambda: workflow.payout_step(transfer_pk=transfer_pk)


def run_due_once(*, limit: int = 100) -> int:
    """Claim and run what is due now, in this thread, one item after another (tests, ``process_orders``);
    how many items ran."""
    ran = 0
    for order_pk in order_services.orders_claim_accept_due(limit=limit):
        workflow.order_advance(order_pk=order_pk)
        ran += 1
    for message_id in order_services.outbox_claim_due(limit=limit):
        order_services.outbox_deliver_claimed(message_id=message_id)
        ran += 1
    for order_pk in order_services.orders_claim_payout_due(limit=limit):
        workflow.payout_start(order_pk=order_pk)
        ran += 1
    for transfer_pk in psp_services.transfers_claim_due(limit=limit):
        workflow.payout_step(transfer_pk=transfer_pk)
        ran += 1
    return ran


class PayoutLane:
    """The loop: claim due work while threads are free, run it in the pools, wait ``poll`` when idle."""

    def __init__(self, *, threads: int, poll: float, accept_threads: int = 1) -> None:
        self.threads = threads
        self.accept_threads = accept_threads
        self.poll = poll
        self.balances = BalanceTimer()
        self.in_flight: set[Future[None]] = set()
        self.accepting: set[Future[None]] = set()
        self.beat_at = 0.0
        self.notify_at = 0.0

    @classmethod
    def from_settings(cls, *, threads: int | None = None) -> PayoutLane:
        """The lane as configured; ``threads`` (the commands' ``--threads``) overrides PAYOUT_LANE_THREADS."""
        return cls(
            threads=threads or settings.PAYOUT_LANE_THREADS,
            poll=float(settings.PAYOUT_LANE_POLL),
            accept_threads=settings.ACCEPT_LANE_THREADS,
        )

    def _heartbeat(self) -> None:
        """Tell readiness (``/health/ready``) this lane is alive, every few seconds."""
        now = time.monotonic()
        if now - self.beat_at < HEARTBEAT_EVERY_SECONDS:
            return
        self.beat_at = now
        try:
            Heartbeat.beat(LANE)
        except DatabaseError:
            logger.warning("payout_lane.heartbeat_failed")

    def _notify(self, pool: ThreadPoolExecutor) -> None:
        """Once a minute, in a pool thread (a chat post may take seconds): ``provision.notify``."""
        now = time.monotonic()
        if now - self.notify_at < NOTIFY_EVERY_SECONDS:
            return
        self.notify_at = now
        self._submit(pool, notify.notifications_watch, "notifications")

    def run(self, stop: threading.Event) -> None:
        logger.info(
            "payout_lane.started",
            extra={"threads": self.threads, "accept_threads": self.accept_threads, "poll": self.poll},
        )
        with (
            ThreadPoolExecutor(max_workers=self.accept_threads, thread_name_prefix="accept") as accepts,
            ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="payout") as pool,
        ):
            while not stop.is_set():
                self._heartbeat()
                self._notify(pool)
                if self._claim(accepts, pool):
                    continue  # more may be due than there were free threads: look again at once
                busy = self.in_flight | self.accepting
                if not busy:
                    stop.wait(self.poll)
                    continue
                done, _ = wait(busy, timeout=self.poll, return_when=FIRST_COMPLETED)
                if done:
                    # A finished item may have made work due (a started payout's transfer is due at once).
                    # Let the items finishing about now finish too and look once for all of them: at tens
                    # of items a second, a claim after each one cost more queries than the work it found.
                    stop.wait(CLAIM_GATHER_SECONDS)
            logger.info(
                "payout_lane.stopping", extra={"in_flight": len(self.in_flight) + len(self.accepting)}
            )
            wait(self.in_flight | self.accepting)
        close_old_connections()

    def _claim(self, accepts: ThreadPoolExecutor, pool: ThreadPoolExecutor) -> int:
        """Hand due work to free threads, offers first; how many items were handed out."""
        self.accepting = {future for future in self.accepting if not future.done()}
        self.in_flight = {future for future in self.in_flight if not future.done()}
        handed = 0
        try:
            free = self.accept_threads - len(self.accepting)
            if free > 0:
                for order_pk in order_services.orders_claim_accept_due(limit=free):
                    self.accepting.add(accepts.submit(_run, _advance(order_pk), f"accept:{order_pk}"))
                    handed += 1
            free = self.threads - len(self.in_flight)
            if free <= 0:
                return handed
            now = time.monotonic()
            for psp in self.balances.due_now(now)[:free]:
                self.balances.due[psp] = now + BALANCE_RETRY_CAP_SECONDS  # not again while this one runs
                self._submit(pool, self._sync_of(psp), f"balances:{psp}")
                free -= 1
                handed += 1
            if free > 0:
                for message_id in order_services.outbox_claim_due(limit=free):
                    self._submit(pool, _deliver(message_id), f"outbox:{message_id}")
                    free -= 1
                    handed += 1
            if free > 0:
                for order_pk in order_services.orders_claim_payout_due(limit=free):
                    self._submit(pool, _start(order_pk), f"start:{order_pk}")
                    free -= 1
                    handed += 1
            if free > 0:
                for transfer_pk in psp_services.transfers_claim_due(limit=free):
                    self._submit(pool, _step(transfer_pk), f"step:{transfer_pk}")
                    handed += 1
        except Exception:
            logger.exception("payout_lane.claim_failed")  # the database is away: try again after a poll
            close_old_connections()
        return handed

    def _submit(self, pool: ThreadPoolExecutor, work: Callable[[], object], what: str) -> None:
        self.in_flight.add(pool.submit(_run, work, what))

    def _sync_of(self, psp: str) -> Callable[[], None]:
        def sync() -> None:
            synced = workflow.balances_sync_psp(psp=psp)
            self.balances.done(psp, ok=synced is not None, now=time.monotonic())

        return sync
