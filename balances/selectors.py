"""Reads of balances used by more than one caller."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from balances.models import Balance, BalanceAlert, LedgerEntry, PspBalance
from balances.money import to_wire
from provision import runtime


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
