"""balance_sync_psp applies a PSP's reading against where the ledger stood when it was read."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balances import selectors, services
from balances.models import EntryKind, LedgerEntry, PspBalance

pytestmark = pytest.mark.django_db


def ledger_now() -> int:
    return selectors.ledger_seqs(currencies=["NGN"])["NGN"]


def sync(psp: str, total: str, *, ledger_seq_at_read: int) -> LedgerEntry | None:
    return services.balance_sync_psp(
        psp=psp,
        currency="NGN",
        total=Decimal(total),
        available=Decimal(total),
        ledger_seq_at_read=ledger_seq_at_read,
    )


def total() -> Decimal:
    return selectors.balance_get(currency="NGN").total


def test_ledger_seqs_names_each_currencys_latest_entry_and_zero_for_an_empty_ledger() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("10"), reason="funds")
    latest = services.balance_credit(currency="NGN", amount=Decimal("20"), reason="funds")

    assert selectors.ledger_seqs(currencies=["NGN", "KES"]) == {"NGN": latest.pk, "KES": 0}


def test_a_staff_credit_entered_before_the_read_is_replaced_by_the_reading() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    read_at = ledger_now()

    sync("lenco", "8000", ledger_seq_at_read=read_at)

    assert total() == Decimal("8000")


def test_a_staff_credit_entered_between_the_read_and_the_apply_is_kept() -> None:
    read_at = ledger_now()
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")

    entry = sync("lenco", "8000", ledger_seq_at_read=read_at)

    assert total() == Decimal("13000")
    assert entry is not None
    assert (entry.kind, entry.psp, entry.total_delta) == (EntryKind.ADJUST, "lenco", Decimal("8000"))
    assert services.balance_verify() == []


def test_a_reading_older_than_the_one_on_record_is_not_applied() -> None:
    old_read_at = ledger_now()
    sync("lenco", "8000", ledger_seq_at_read=ledger_now())
    services.balance_credit(currency="NGN", amount=Decimal("500"), reason="deposit")
    sync("lenco", "8500", ledger_seq_at_read=ledger_now())

    assert sync("lenco", "7000", ledger_seq_at_read=old_read_at) is None

    assert total() == Decimal("8500")
    assert PspBalance.objects.get(psp="lenco").total == Decimal("8500")
