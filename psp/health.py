"""Whether a PSP takes new payouts: a circuit breaker per PSP and a failure-rate window.

Both only ever keep *new* payouts away from a PSP. A transfer already at a PSP is always looked up at that
PSP, whatever its health: an in-flight payout never moves to another PSP (DESIGN.md "Failure rules").

Circuit breaker (``PspCircuit``, one row per PSP, shared by every process through the database)
    * ``PSP_BREAKER_FAILURES`` consecutive retryable failures (``PspUnavailable``: timeout, connection error,
      5xx, 429, an unreadable answer, or an adapter that crashed) open the circuit.
    * While open, routing skips the PSP for ``PSP_BREAKER_COOLDOWN`` seconds. After that one new payout may
      claim the probe (``circuit_claim_probe``: open -> half_open, atomically, so one process wins); the
      other processes keep skipping the PSP while the probe is in flight. A probe that never reports
      (a crashed worker) is given up after another cool-down and the next payout may probe.
    * Any call that gets an answer (``ok`` or a definitive refusal: the PSP is up, it just said no) resets
      the count; from half-open, or from open once the cool-down has passed, it closes the circuit. Answers
      that arrive during the cool-down (look-ups of in-flight transfers) do not close it: a PSP whose reads
      work while its payouts time out would otherwise flap.
    * A failure from half-open, or from open after the cool-down, re-opens it and the cool-down restarts.

Failure-rate window (``FAILURE_*`` below; they mirror the aggregator's own provider-failure rule, so the node
stops before the aggregator excludes it): within the last 120 minutes, a PSP with at least 5 transfers, at
least 3 of them final failures, and a failure share of at least 30% gets no new payouts.

``observed_call`` is how ``psp.services`` calls an adapter: it records the call's duration and outcome in
``provision.metrics.psp_call`` and the outcome in the circuit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from provision import metrics
from psp.base import FailureReason, PspAdapter, PspError, PspUnavailable
from psp.models import CircuitState, PspCircuit, Transfer, TransferStatus

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The failure-rate window. These thresholds mirror the aggregator's own rule for excluding a provider whose
# orders fail, so that the node stops sending new payouts to a failing PSP *before* the aggregator has seen
# enough failed orders to exclude this node.
FAILURE_WINDOW = timedelta(minutes=120)
"""How far back the failure rate looks (Transfer.created_at), like the aggregator's 120-minute window."""
FAILURE_MIN_ATTEMPTS = 5
"""Fewer attempts than this in the window never exclude a PSP (the aggregator's minimum sample)."""
FAILURE_MIN_FAILURES = 3
"""Fewer final failures (FAILED, or REJECTED before money moved) never exclude a PSP."""
FAILURE_MIN_SHARE = Decimal("0.30")
"""From this share of failures among the window's attempts on, the PSP gets no new payouts until enough
failures age out of the window. Attempts are the Transfer rows created in the window, whatever their state."""
FAILURE_STATES = (TransferStatus.FAILED, TransferStatus.REJECTED)
# An invalid recipient account is the recipient's fault, not the PSP's (the aggregator treats "Invalid
# recipient bank details" the same way): such refusals never count against a PSP.

CALL_OK = "ok"
CALL_REJECTED = "rejected"
CALL_UNAVAILABLE = "unavailable"
CALL_ERROR = "error"


# --- reading health -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PspHealth:
    psp: str
    circuit: str = CircuitState.CLOSED
    probe_due: bool = False  # the circuit is not closed but one probe may go now
    attempts: int | None = None  # transfers created in the window; None: not counted (too few failures)
    failures: int = 0  # final failures in the window

    @property
    def failing(self) -> bool:
        return (
            self.attempts is not None
            and self.attempts >= FAILURE_MIN_ATTEMPTS
            and self.failures >= FAILURE_MIN_FAILURES
            and Decimal(self.failures) >= FAILURE_MIN_SHARE * self.attempts
        )

    @property
    def takes_new_payouts(self) -> bool:
        return not self.failing and (self.circuit == CircuitState.CLOSED or self.probe_due)


def _cooldown() -> timedelta:
    return timedelta(seconds=settings.PSP_BREAKER_COOLDOWN)


def _probe_due(circuit: PspCircuit, now: datetime) -> bool:
    cooled = now - _cooldown()
    if circuit.state == CircuitState.OPEN:
        return circuit.opened_at is None or circuit.opened_at <= cooled
    if circuit.state == CircuitState.HALF_OPEN:
        return circuit.probe_at is None or circuit.probe_at <= cooled
    return False


def psp_health(*, psps: Iterable[str], now: datetime | None = None) -> dict[str, PspHealth]:
    """The health of each named PSP (two queries whatever the number of PSPs, three when one is failing).

    ``attempts`` is only counted for a PSP with at least ``FAILURE_MIN_FAILURES`` failures in the window
    (below that the PSP is healthy whatever its volume); otherwise it is None."""
    now = now or timezone.now()
    names = list(psps)
    circuits = {circuit.psp: circuit for circuit in PspCircuit.objects.filter(psp__in=names)}
    window = _failure_window(names, now)
    health = {}
    for name in names:
        circuit = circuits.get(name)
        row = window.get(name, {})
        health[name] = PspHealth(
            psp=name,
            circuit=circuit.state if circuit else CircuitState.CLOSED,
            probe_due=_probe_due(circuit, now) if circuit else False,
            attempts=row.get("attempts"),
            failures=row.get("failures") or 0,
        )
    return health


def payouts_waiting_for_otp(*, psps: Iterable[str]) -> dict[str, tuple[int, datetime]]:
    """PSP -> (how many, since when) of its transfers still pending whose last answer from the PSP said
    ``otp``: Paystack holds a transfer for a one-time password while "Confirm transfers before sending" is on.
    Nobody gives that password on an automated node; Paystack abandons the transfer after 30 minutes. A PSP
    with none is left out."""
    rows = (
        Transfer.objects.filter(
            psp__in=list(psps), status=TransferStatus.PENDING, last_response__status="otp"
        )
        .values("psp")
        .annotate(count=Count("pk"), since=Min("created_at"))
        .order_by("psp")
    )
    return {row["psp"]: (row["count"], row["since"]) for row in rows}


def _failure_window(names: list[str], now: datetime) -> dict[str, dict[str, int | None]]:
    """Attempts and final failures in the window, per PSP. Failures are counted first (few rows, on the
    ``transfer_psp_status_created`` index); attempts, which grow with traffic, only for a PSP with enough
    failures to be excluded. So a busy, healthy PSP costs one small query, whatever its volume."""
    since = now - FAILURE_WINDOW
    failures = dict(
        Transfer.objects.filter(psp__in=names, status__in=FAILURE_STATES, created_at__gte=since)
        .exclude(failure_reason=FailureReason.RECIPIENT_INVALID)
        .values("psp")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("psp", "n")
    )
    suspects = [name for name, n in failures.items() if n >= FAILURE_MIN_FAILURES]
    attempts = dict(
        Transfer.objects.filter(psp__in=suspects, created_at__gte=since)
        .values("psp")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("psp", "n")
        if suspects
        else []
    )
    return {name: {"attempts": attempts.get(name), "failures": failures.get(name, 0)} for name in names}


# --- writing the circuit ----------------------------------------------------------------------------------


def circuit_claim_probe(*, psp: str, now: datetime | None = None) -> bool:
    """Let one new payout through a circuit that is not closed; False when another process got it first.

    A closed circuit needs no claim (True). One conditional UPDATE, so two processes cannot both probe.
    """
    now = now or timezone.now()
    cooled = now - _cooldown()
    due = Q(state=CircuitState.OPEN) & (Q(opened_at__isnull=True) | Q(opened_at__lte=cooled))
    stale_probe = Q(state=CircuitState.HALF_OPEN) & (Q(probe_at__isnull=True) | Q(probe_at__lte=cooled))
    claimed = PspCircuit.objects.filter(due | stale_probe, psp=psp).update(
        state=CircuitState.HALF_OPEN, probe_at=now, updated_at=now
    )
    if claimed:
        logger.info("psp.circuit_probe", extra={"psp": psp})
        return True
    return not PspCircuit.objects.filter(psp=psp).exclude(state=CircuitState.CLOSED).exists()


def circuit_record(*, psp: str, ok: bool, now: datetime | None = None) -> None:
    """Record one call's outcome: ``ok`` = the PSP answered; otherwise a retryable failure."""
    now = now or timezone.now()
    if ok:
        _record_answer(psp, now)
    else:
        _record_failure(psp, now)


def _record_answer(psp: str, now: datetime) -> None:
    row = PspCircuit.objects.filter(psp=psp).values_list("state", "consecutive_failures").first()
    if row is None or row == (CircuitState.CLOSED, 0):
        return  # the usual case: one read, no write
    cooled = now - _cooldown()
    closes = Q(state=CircuitState.HALF_OPEN) | (
        Q(state=CircuitState.OPEN) & (Q(opened_at__isnull=True) | Q(opened_at__lte=cooled))
    )
    closed = PspCircuit.objects.filter(closes, psp=psp).update(
        state=CircuitState.CLOSED, consecutive_failures=0, opened_at=None, probe_at=None, updated_at=now
    )
    if closed:
        logger.info("psp.circuit_closed", extra={"psp": psp})
        return
    # Closed with a failure streak: the streak is broken. (Open within the cool-down: left alone.)
    PspCircuit.objects.filter(psp=psp, state=CircuitState.CLOSED).update(
        consecutive_failures=0, updated_at=now
    )


def _record_failure(psp: str, now: datetime) -> None:
    with transaction.atomic():
        PspCircuit.objects.get_or_create(psp=psp)
        circuit = PspCircuit.objects.select_for_update().get(psp=psp)
        circuit.consecutive_failures += 1
        if circuit.state == CircuitState.CLOSED:
            opens = circuit.consecutive_failures >= settings.PSP_BREAKER_FAILURES
        elif circuit.state == CircuitState.HALF_OPEN:
            opens = True  # the probe failed
        else:  # open: a failure after the cool-down acted as a probe and restarts it; during it, just counted
            opens = _probe_due(circuit, now)
        if opens:
            circuit.state = CircuitState.OPEN
            circuit.opened_at = now
            circuit.probe_at = None
        circuit.save()
    if opens:
        logger.warning(
            "psp.circuit_opened",
            extra={"psp": psp, "consecutive_failures": circuit.consecutive_failures},
        )


@transaction.atomic(durable=True)
def circuit_reset(*, psp: str) -> None:
    """Close a circuit by hand (ops know the PSP is back)."""
    PspCircuit.objects.filter(psp=psp).update(
        state=CircuitState.CLOSED,
        consecutive_failures=0,
        opened_at=None,
        probe_at=None,
        updated_at=timezone.now(),
    )
    logger.info("psp.circuit_reset", extra={"psp": psp})


# --- calling an adapter -----------------------------------------------------------------------------------


def observed_call(adapter: PspAdapter, operation: str, call: Callable[[], T]) -> T:
    """Make one adapter call, recording its duration and outcome (metrics) and its outcome (circuit).

    ``PspUnavailable`` and ``PspRejected`` pass through. Anything else an adapter raises (a bug, or an answer
    shaped in a way nobody foresaw) becomes ``PspUnavailable``: the outcome of the call is unknown, which the
    callers already handle safely (look up by reference, then review).
    """
    started = time.monotonic()
    try:
        result = call()
    except PspError as exc:
        outcome = CALL_UNAVAILABLE if exc.retryable else CALL_REJECTED
        _observe(adapter.name, operation, outcome, started)
        raise
    except Exception as exc:
        logger.exception("psp.call_crashed", extra={"psp": adapter.name, "operation": operation})
        _observe(adapter.name, operation, CALL_ERROR, started)
        raise PspUnavailable(
            f"{adapter.name} {operation}: {type(exc).__name__} in the adapter", psp=adapter.name
        ) from exc
    _observe(adapter.name, operation, CALL_OK, started)
    return result


def _observe(psp: str, operation: str, outcome: str, started: float) -> None:
    metrics.psp_call(psp=psp, operation=operation, outcome=outcome, seconds=time.monotonic() - started)
    circuit_record(psp=psp, ok=outcome in (CALL_OK, CALL_REJECTED))
