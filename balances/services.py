"""Every balance change, each one a ledger entry written in the caller's transaction.

Functions that move money for an order expect the caller to hold the order's row lock (they are called
from ``orders.services`` inside its transaction); they lock the balance row themselves, always after
the order (lock order: Order -> Transfer -> Balance).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from balances import locks, selectors
from balances.models import Balance, BalanceAlert, EntryKind, LedgerEntry, PspBalance
from balances.money import MONEY_DECIMAL_PLACES
from provision.errors import Conflict, Refused


class Order(Protocol):
    """What the ledger reads of an order (balances sits below orders and never imports it)."""

    pk: Any
    amount: Decimal
    currency: str


logger = logging.getLogger(__name__)


MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)


class InsufficientBalance(Refused):
    code = "insufficient_balance"


class BalanceWouldGoNegative(Refused):
    code = "balance_would_go_negative"


def _balance_for_update(currency: str) -> Balance:
    balance = locks.balance_locked().filter(currency=currency).first()
    if balance is None:
        try:
            with transaction.atomic():
                Balance.objects.create(currency=currency)
        except IntegrityError:
            pass  # another process created it first
        balance = locks.balance_locked().get(currency=currency)
    return balance


def _apply(
    *,
    currency: str,
    kind: str,
    amount: Decimal,
    total_delta: Decimal,
    reserved_delta: Decimal,
    order: Order | None = None,
    actor: AbstractBaseUser | None = None,
    psp: str = "",
    reason: str = "",
    balance: Balance | None = None,
) -> LedgerEntry:
    """Move the balance and write its ledger entry. ``balance``: the row, already locked by the caller."""
    balance = balance or _balance_for_update(currency)
    # Computed in Decimal on the locked row, not with F(): SQLite does column arithmetic in floating point
    # (1.60 + 1.99 - 1.60 - 1.99 != 0 there), and the row lock already makes read-modify-write safe.
    total = (balance.total + total_delta).quantize(MONEY_QUANTUM)
    reserved = (balance.reserved + reserved_delta).quantize(MONEY_QUANTUM)
    if reserved < 0 or total < reserved:  # the table's CHECK constraints, asked before writing anything
        raise BalanceWouldGoNegative(
            f"This change would make the {currency} balance negative",
            currency=currency,
            total=str(balance.total),
            reserved=str(balance.reserved),
        )
    Balance.objects.filter(pk=balance.pk).update(total=total, reserved=reserved, updated_at=timezone.now())
    entry = LedgerEntry.objects.create(
        balance=balance,
        kind=kind,
        amount=amount,
        total_delta=total_delta,
        reserved_delta=reserved_delta,
        order_id=None if order is None else order.pk,
        actor=actor,  # type: ignore[misc]
        psp=psp,
        reason=reason[:255],
    )
    balance.total, balance.reserved = total, reserved
    _check_threshold(balance)
    return entry


def _check_threshold(balance: Balance) -> None:
    threshold = selectors.threshold_for(currency=balance.currency)
    if threshold is None:
        return
    open_alert = BalanceAlert.objects.filter(currency=balance.currency, resolved_at__isnull=True).first()
    if balance.available < threshold and open_alert is None:
        BalanceAlert.objects.create(
            currency=balance.currency, available=balance.available, threshold=threshold
        )
        logger.warning(
            "balance.critical",
            extra={
                "currency": balance.currency,
                "available": str(balance.available),
                "threshold": str(threshold),
            },
        )
    elif balance.available >= threshold and open_alert is not None:
        open_alert.resolved_at = timezone.now()
        open_alert.save(update_fields=["resolved_at"])


def balance_reserve(*, order: Order) -> LedgerEntry:
    """Reserve the order's amount. Caller holds the order lock. Raises InsufficientBalance."""
    balance = _balance_for_update(order.currency)
    if balance.available < order.amount:
        raise InsufficientBalance(
            "Insufficient available balance", currency=order.currency, available=str(balance.available)
        )
    return _apply(
        currency=order.currency,
        kind=EntryKind.RESERVE,
        amount=order.amount,
        total_delta=Decimal("0"),
        reserved_delta=order.amount,
        order=order,
        reason="order accepted",
        balance=balance,
    )


def balance_release(*, order: Order, reason: str, actor: AbstractBaseUser | None = None) -> LedgerEntry:
    """Release the order's reservation. Caller holds the order lock. ``actor``: the staff user whose
    action released it (None for the node's own decisions)."""
    return _apply(
        currency=order.currency,
        kind=EntryKind.RELEASE,
        amount=order.amount,
        total_delta=Decimal("0"),
        reserved_delta=-order.amount,
        order=order,
        actor=actor,
        reason=reason,
    )


def balance_debit(
    *, order: Order, psp: str, actor: AbstractBaseUser | None = None, reason: str = "payout succeeded"
) -> LedgerEntry:
    """The reserved payout left the account: total and reserved go down. Caller holds the order lock.
    ``actor``: the staff user who recorded it paid (None when the PSP's answer did)."""
    return _apply(
        currency=order.currency,
        kind=EntryKind.DEBIT,
        amount=order.amount,
        total_delta=-order.amount,
        reserved_delta=-order.amount,
        order=order,
        actor=actor,
        psp=psp,
        reason=reason,
    )


def balance_reversal(*, order: Order, psp: str) -> LedgerEntry:
    """The PSP took back a payout it had made: the amount is in the account again (a CREDIT linked to the
    order, after its DEBIT). Caller holds the order lock."""
    return _apply(
        currency=order.currency,
        kind=EntryKind.CREDIT,
        amount=order.amount,
        total_delta=order.amount,
        reserved_delta=Decimal("0"),
        order=order,
        psp=psp,
        reason="payout reversed by the PSP",
    )


@transaction.atomic
def balance_credit(
    *, currency: str, amount: Decimal, reason: str, actor: AbstractBaseUser | None = None
) -> LedgerEntry:
    """Add funds (a top-up recorded by staff)."""
    if amount <= 0:
        raise Refused("Amount must be positive", errors={"amount": ["Must be greater than zero."]})
    return _apply(
        currency=currency,
        kind=EntryKind.CREDIT,
        amount=amount,
        total_delta=amount,
        reserved_delta=Decimal("0"),
        actor=actor,
        reason=reason,
    )


@transaction.atomic
def balance_adjust(
    *, currency: str, delta: Decimal, reason: str, actor: AbstractBaseUser | None = None
) -> LedgerEntry | None:
    """Move the total by a signed ``delta`` (a staff correction; no PSP). None when delta is zero."""
    if delta == 0:
        return None
    return _apply(
        currency=currency,
        kind=EntryKind.ADJUST,
        amount=abs(delta),
        total_delta=delta,
        reserved_delta=Decimal("0"),
        actor=actor,
        reason=reason,
    )


@transaction.atomic
def balance_set(
    *, currency: str, total: Decimal, reason: str, actor: AbstractBaseUser | None = None
) -> LedgerEntry | None:
    """Set the total to ``total`` through an adjust entry."""
    balance = _balance_for_update(currency)
    return balance_adjust(currency=currency, delta=total - balance.total, reason=reason, actor=actor)


class DriftChanged(Conflict):
    code = "balance_drift_changed"


@transaction.atomic
def balance_sync_psp(
    *, psp: str, currency: str, total: Decimal, available: Decimal, ledger_seq_at_read: int
) -> Decimal | None:
    """Record a PSP's reported balance and the currency's drift; never change the ledger.

    ``ledger_seq_at_read``: where the currency's ledger stood just before the PSP was read (its latest
    entry's id, ``selectors.ledger_seqs``), so that the drift (``selectors.balance_drift``) never counts a
    movement entered after the read (a payout debited while the PSP was being read) as a difference. A
    reading taken at an earlier ledger entry than the one on record for that PSP is not recorded (None).
    Returns the drift (positive: the PSPs hold more than the ledger says). The book changes only when a
    staff user books the drift (``balance_drift_book``).
    """
    _balance_for_update(currency)  # one sync or movement of this currency at a time
    recorded = PspBalance.objects.filter(psp=psp, currency=currency).first()
    if (
        recorded
        and recorded.ledger_seq_at_read is not None
        and recorded.ledger_seq_at_read > ledger_seq_at_read
    ):
        logger.info(
            "balance.sync_stale_reading",
            extra={"psp": psp, "currency": currency, "ledger_seq_at_read": ledger_seq_at_read},
        )
        return None
    row, _ = PspBalance.objects.update_or_create(
        psp=psp,
        currency=currency,
        defaults={
            "total": total,
            "available": available,
            "snapshot_at": timezone.now(),
            "status": "ok",
            "ledger_seq_at_read": ledger_seq_at_read,
        },
    )
    drift = selectors.balance_drift(currency=currency)
    amount = drift.amount if drift is not None else Decimal("0")
    PspBalance.objects.filter(pk=row.pk).update(drift=amount)
    if amount and (recorded is None or recorded.drift != amount):
        logger.warning(
            "balance.drift",
            extra={"psp": psp, "currency": currency, "drift": str(amount), "psp_total": str(total)},
        )
    return amount


@transaction.atomic
def balance_drift_book(
    *, currency: str, expected: Decimal, reason: str, actor: AbstractBaseUser
) -> LedgerEntry:
    """Move the ledger's total to what the PSPs' readings say: an ADJUST of the drift, by ``actor``.

    ``expected``: the drift the staff user was shown; refused when the drift is not that any more (a sync
    or a movement came in between), so nobody books a figure they did not see.
    Raises Refused (no reason, no reading, no drift), DriftChanged, BalanceWouldGoNegative.
    """
    if not reason.strip():
        raise Refused("A reason is required", errors={"reason": ["Say why the book changes."]})
    balance = _balance_for_update(currency)  # the drift is read under the lock every movement takes
    drift = selectors.balance_drift(currency=currency)
    if drift is None:
        raise Refused(f"No PSP has reported a {currency} balance yet", currency=currency)
    if drift.amount != expected:
        raise DriftChanged(
            f"The {currency} drift is {drift.amount} now, not {expected}: look again before booking it",
            currency=currency,
            drift=str(drift.amount),
        )
    if drift.amount == 0:
        raise Refused(f"The {currency} ledger already agrees with the PSPs", currency=currency)
    entry = _apply(
        currency=currency,
        kind=EntryKind.ADJUST,
        amount=abs(drift.amount),
        total_delta=drift.amount,
        reserved_delta=Decimal("0"),
        actor=actor,
        psp=selectors.DRIFT_BOOKING_PSP,
        reason=f"drift booked (PSPs {drift.psp_total}, unseen {drift.unseen}): {reason}",
        balance=balance,
    )
    logger.warning(
        "balance.drift_booked",
        extra={"currency": currency, "drift": str(drift.amount), "by": actor.pk, "entry": entry.pk},
    )
    return entry


def balance_verify() -> list[str]:
    """Recompute every balance from its ledger; return one line per mismatch (empty when all agree)."""
    problems: list[str] = []
    for balance in Balance.objects.all():
        total = sum((e.total_delta for e in balance.entries.all()), Decimal("0"))
        reserved = sum((e.reserved_delta for e in balance.entries.all()), Decimal("0"))
        if total != balance.total or reserved != balance.reserved:
            problems.append(
                f"{balance.currency}: balance total={balance.total} reserved={balance.reserved}, "
                f"ledger total={total} reserved={reserved}"
            )
    return problems
