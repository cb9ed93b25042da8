"""Node vs PSP per currency and PSP: the reads behind the balances page (``balances.admin_views``).

For each currency the node's book (``Balance``) is set beside what the PSPs last reported (``PspBalance``)
and what the ledger moved since each reading, the same way ``services.balance_sync_psp`` counts them:

    expected = the sum over PSPs with a reading of (its reading + the movements through it entered after
               the reading) + the movements through no PSP with a reading entered after the latest reading
    difference = node total - expected

A movement is an entry that changes the total, other than a booked correction to the readings
(``selectors.CORRECTIONS``, as ``selectors.balance_drift`` counts them: the difference here is minus the
drift). A sync records the PSP's figure and changes no book, so a difference is drift the books and the PSPs
do not agree on (a payout the ledger does not know, a top-up not recorded, a reversal), shown until staff
explain it and book it (the *Book the drift* action, with a reason). A currency no PSP
has reported yet has no expected figure. Aggregated in SQL: one query per currency, plus the two reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Max, Q, Sum

from balances.models import Balance, LedgerEntry, PspBalance
from balances.selectors import CORRECTIONS


@dataclass(frozen=True)
class PspLine:
    psp: str
    reported_total: Decimal
    reported_available: Decimal
    status: str
    read_at: datetime
    moved_since: Decimal  # through this PSP, entered after its reading
    expected_now: Decimal  # reported_total + moved_since


@dataclass(frozen=True)
class CurrencyLine:
    currency: str
    node_total: Decimal
    node_reserved: Decimal
    node_available: Decimal
    psps: list[PspLine]
    moved_elsewhere: Decimal  # through no PSP with a reading, after the latest reading
    expected: Decimal | None  # None: no PSP has reported this currency yet
    difference: Decimal | None
    last_sync_at: datetime | None

    @property
    def agrees(self) -> bool:
        return self.difference == 0

    @property
    def reported_total(self) -> Decimal:
        return sum((line.reported_total for line in self.psps), Decimal("0"))

    @property
    def moved_total(self) -> Decimal:
        return sum((line.moved_since for line in self.psps), self.moved_elsewhere)


def _line(currency: str, balance: Balance | None, readings: list[PspBalance]) -> CurrencyLine:
    total = balance.total if balance else Decimal("0")
    reserved = balance.reserved if balance else Decimal("0")
    if not readings:
        return CurrencyLine(currency, total, reserved, total - reserved, [], Decimal("0"), None, None, None)
    entries = LedgerEntry.objects.filter(balance__currency=currency).exclude(CORRECTIONS)
    known = [r.ledger_seq_at_read for r in readings if r.ledger_seq_at_read is not None]
    latest = max(known) if known else (entries.aggregate(last=Max("pk"))["last"] or 0)
    seqs = {r.psp: latest if r.ledger_seq_at_read is None else r.ledger_seq_at_read for r in readings}
    sums = entries.aggregate(
        elsewhere=Sum("total_delta", filter=Q(pk__gt=latest) & ~Q(psp__in=list(seqs))),
        **{
            f"psp_{i}": Sum("total_delta", filter=Q(psp=psp, pk__gt=seq))
            for i, (psp, seq) in enumerate(seqs.items())
        },
    )
    psps = []
    for i, reading in enumerate(readings):
        moved = sums[f"psp_{i}"] or Decimal("0")
        psps.append(
            PspLine(
                psp=reading.psp,
                reported_total=reading.total,
                reported_available=reading.available,
                status=reading.status,
                read_at=reading.snapshot_at,
                moved_since=moved,
                expected_now=reading.total + moved,
            )
        )
    elsewhere = sums["elsewhere"] or Decimal("0")
    expected = sum((line.expected_now for line in psps), Decimal("0")) + elsewhere
    return CurrencyLine(
        currency=currency,
        node_total=total,
        node_reserved=reserved,
        node_available=total - reserved,
        psps=psps,
        moved_elsewhere=elsewhere,
        expected=expected,
        difference=total - expected,
        last_sync_at=max(r.snapshot_at for r in readings),
    )


def balance_reconciliation() -> list[CurrencyLine]:
    """One line per currency the node serves or a PSP reported, in currency order."""
    balances = {b.currency: b for b in Balance.objects.all()}
    readings: dict[str, list[PspBalance]] = {}
    for reading in PspBalance.objects.order_by("currency", "psp"):
        readings.setdefault(reading.currency, []).append(reading)
    currencies = sorted({*settings.CURRENCIES, *balances, *readings})
    return [_line(c, balances.get(c), readings.get(c, [])) for c in currencies]
