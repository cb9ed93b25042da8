"""Reads of balances used by more than one caller."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from balances.models import Balance, BalanceAlert, EntryKind, LedgerEntry, PspBalance
from balances.money import to_wire
from provision import runtime

# The ``psp`` of an ADJUST that corrects the book to the PSPs' readings (``services.balance_drift_book``).
DRIFT_BOOKING_PSP = "psp-readings"
# A correction to the readings (an ADJUST naming a PSP; staff adjustments name none): not a movement of
# money, so never counted as one a reading could not see.
CORRECTIONS = Q(kind=EntryKind.ADJUST) & ~Q(psp="")


@dataclass(frozen=True)
class Drift:
    """How far the ledger's total is from what the PSPs' last readings say, for one currency."""

    currency: str
    ledger_total: Decimal
    psp_total: Decimal  # the sum of the PSPs' last readings
    unseen: Decimal  # movements entered after the readings, so not in them
    readings: tuple[PspBalance, ...]

    @property
    def expected_total(self) -> Decimal:
        """The total the readings say the ledger should have."""
        return self.psp_total + self.unseen

    @property
    def amount(self) -> Decimal:
        """Positive: the PSPs hold more than the ledger says; negative: less."""
        return self.expected_total - self.ledger_total

    @property
    def last_read_at(self) -> datetime | None:
        return max((row.snapshot_at for row in self.readings), default=None)


def balance_get(*, currency: str) -> Balance:
    """The balance of ``currency``; an unsaved zero balance when none exists yet."""
    balance = Balance.objects.filter(currency=currency).first()
    return balance or Balance(currency=currency, total=Decimal("0"), reserved=Decimal("0"))


def balances_by_currency() -> dict[str, Balance]:
    existing = {
        balance.currency: balance for balance in Balance.objects.filter(currency__in=settings.CURRENCIES)
    }
    return {
        currency: existing.get(currency)
        or Balance(currency=currency, total=Decimal("0"), reserved=Decimal("0"))
        for currency in settings.CURRENCIES
    }


def ledger_seqs(*, currencies: Iterable[str]) -> dict[str, int]:
    """Where each currency's ledger stands: the id of its latest entry (0 when it has none).

    Taken just before a PSP's balances are read (``balances.services.balance_sync_psp``'s
    ``ledger_seq_at_read``). Entries of one currency are written under its balance row lock, so an entry
    not committed yet has, or will get, a larger id than every entry committed now.
    """
    seqs: dict[str, int] = {}
    for currency in currencies:
        latest = (
            LedgerEntry.objects.filter(balance__currency=currency)
            .order_by("-pk")
            .values_list("pk", flat=True)
        )
        seqs[currency] = latest.first() or 0
    return seqs


def balance_drift(*, currency: str) -> Drift | None:
    """The currency's drift now; None when no PSP has reported the currency yet.

    The readings' total, plus the movements the readings could not see, minus the ledger's total. A
    movement is an entry that changes the total, other than a correction to the readings
    (``CORRECTIONS``); one through a PSP with a reading is unseen when entered after that PSP's reading,
    one through no such PSP (staff credits and adjustments, orders marked paid outside the node) when
    entered after the newest reading. So a payout debited while a PSP was being read is no drift, and a
    debit through one PSP after its reading is not hidden by another PSP's newer reading. A payout the
    PSP had already made when it was read but that the ledger learns of only afterwards counts twice
    until the next reading: the drift errs low (towards "the PSPs hold less"), never high.
    """
    readings = tuple(PspBalance.objects.filter(currency=currency).order_by("psp"))
    if not readings:
        return None
    balance = Balance.objects.filter(currency=currency).first()
    known = [row.ledger_seq_at_read for row in readings if row.ledger_seq_at_read is not None]
    # A reading recorded before ``ledger_seq_at_read`` existed counts as taken with the newest one.
    newest = max(known) if known else ledger_seqs(currencies=[currency])[currency]
    read_at = {
        row.psp: newest if row.ledger_seq_at_read is None else row.ledger_seq_at_read for row in readings
    }
    unseen = Q(pk__gt=newest) & ~Q(psp__in=list(read_at))
    for psp, seq in read_at.items():
        unseen |= Q(psp=psp, pk__gt=seq)
    moved = Decimal("0")
    if balance is not None:
        moved = sum(
            LedgerEntry.objects.filter(unseen, balance=balance)
            .exclude(CORRECTIONS)
            .exclude(total_delta=0)
            .values_list("total_delta", flat=True),
            Decimal("0"),
        )
    return Drift(
        currency=currency,
        ledger_total=balance.total if balance is not None else Decimal("0"),
        psp_total=sum((row.total for row in readings), Decimal("0")),
        unseen=moved,
        readings=readings,
    )


def balance_drifts(*, currencies: Iterable[str]) -> dict[str, Drift]:
    """The drift of each of ``currencies`` some PSP has reported."""
    drifts = {currency: balance_drift(currency=currency) for currency in currencies}
    return {currency: drift for currency, drift in drifts.items() if drift is not None}


def threshold_for(*, currency: str) -> Decimal | None:
    table = runtime.current().critical_balance_threshold
    return table.get(currency, table.get("*"))


def open_alerts() -> list[BalanceAlert]:
    return list(BalanceAlert.objects.filter(resolved_at__isnull=True))


def _non_negative(amount: Decimal) -> str:
    return to_wire(max(amount, Decimal("0")))


def node_info() -> dict[str, Any]:
    """The ``data`` of GET /info, every field in the JSON type the aggregator's Go struct expects."""
    balances = balances_by_currency()
    last_updated = max((b.updated_at for b in balances.values() if b.updated_at), default=None)
    return {
        "serviceInfo": {
            "currencies": list(settings.CURRENCIES),
            "version": settings.NODE_VERSION,
            "lastUpdated": (last_updated or timezone.now()).isoformat(),
            "totalPSPs": len(settings.PSP),
            "mode": runtime.current().provision_mode,
        },
        "totalBalances": {
            currency: {
                "availableBalance": _non_negative(balance.available),
                "totalBalance": _non_negative(balance.total),
            }
            for currency, balance in balances.items()
        },
        "balances": [
            {
                "psp": row.psp,
                "currency": row.currency,
                "availableBalance": _non_negative(row.available),
                "totalBalance": _non_negative(row.total),
                "status": row.status,
                "snapshotTime": row.snapshot_at.isoformat(),
            }
            for row in PspBalance.objects.filter(currency__in=settings.CURRENCIES)
        ],
    }
