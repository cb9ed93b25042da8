"""balance_sync_psp records a PSP's reading and the drift against where the ledger stood when it was read;
it never changes the ledger. A staff user books a drift with a reason (balance_drift_book).

Contract change (issue 19): a sync used to post an ADJUST that moved the total to the readings; that undid
a mark-paid debit. Now it records the reading and the drift, and the book changes only by a staff action.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from balances import selectors, services
from balances.models import EntryKind, LedgerEntry, PspBalance
from provision.errors import Refused

pytestmark = pytest.mark.django_db


def ledger_now() -> int:
    return selectors.ledger_seqs(currencies=["NGN"])["NGN"]


def sync(psp: str, total: str, *, ledger_seq_at_read: int) -> Decimal | None:
    return services.balance_sync_psp(
        psp=psp,
        currency="NGN",
        total=Decimal(total),
        available=Decimal(total),
        ledger_seq_at_read=ledger_seq_at_read,
    )


def total() -> Decimal:
    return selectors.balance_get(currency="NGN").total


def drift() -> Decimal:
    found = selectors.balance_drift(currency="NGN")
    assert found is not None
    return found.amount


@pytest.fixture
def ops() -> User:
    return User.objects.create_user(username="ops", is_staff=True)


def test_ledger_seqs_names_each_currencys_latest_entry_and_zero_for_an_empty_ledger() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("10"), reason="funds")
    latest = services.balance_credit(currency="NGN", amount=Decimal("20"), reason="funds")

    assert selectors.ledger_seqs(currencies=["NGN", "KES"]) == {"NGN": latest.pk, "KES": 0}


def test_a_sync_records_the_reading_and_the_drift_and_leaves_the_ledger_alone() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    entries_before = LedgerEntry.objects.count()

    recorded = sync("lenco", "8000", ledger_seq_at_read=ledger_now())

    assert recorded == Decimal("3000")
    assert total() == Decimal("5000")
    assert LedgerEntry.objects.count() == entries_before
    row = PspBalance.objects.get(psp="lenco", currency="NGN")
    assert (row.total, row.drift) == (Decimal("8000"), Decimal("3000"))


def test_no_currency_reading_means_no_drift() -> None:
    assert selectors.balance_drift(currency="NGN") is None


def test_a_staff_credit_entered_between_the_read_and_the_apply_is_not_drift() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("8000"), reason="opening")
    read_at = ledger_now()
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")

    recorded = sync("lenco", "8000", ledger_seq_at_read=read_at)

    assert recorded == Decimal("0")
    assert total() == Decimal("13000")


def test_a_fee_adjusted_after_the_read_is_not_drift_and_one_before_it_is_kept_by_the_reading() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("8000"), reason="opening")
    sync("lenco", "8000", ledger_seq_at_read=ledger_now())

    services.balance_adjust(currency="NGN", delta=Decimal("-50"), reason="Lenco fee")

    assert drift() == Decimal("0")  # the ledger moved after the reading: the reading could not see it
    sync("lenco", "7950", ledger_seq_at_read=ledger_now())
    assert drift() == Decimal("0")
    assert total() == Decimal("7950")


def test_a_reading_older_than_the_one_on_record_is_not_recorded() -> None:
    old_read_at = ledger_now()
    sync("lenco", "8000", ledger_seq_at_read=ledger_now())
    services.balance_credit(currency="NGN", amount=Decimal("500"), reason="deposit")
    sync("lenco", "8500", ledger_seq_at_read=ledger_now())

    assert sync("lenco", "7000", ledger_seq_at_read=old_read_at) is None

    assert PspBalance.objects.get(psp="lenco").total == Decimal("8500")
    assert total() == Decimal("500")


def test_a_staff_user_books_the_drift_with_a_reason_and_the_ledger_then_agrees(ops: User) -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("lenco", "8000", ledger_seq_at_read=ledger_now())

    entry = services.balance_drift_book(
        currency="NGN", expected=Decimal("3000"), reason="deposit of 3 Dec not recorded", actor=ops
    )

    assert (entry.kind, entry.total_delta, entry.actor, entry.psp) == (
        EntryKind.ADJUST,
        Decimal("3000"),
        ops,
        selectors.DRIFT_BOOKING_PSP,
    )
    assert entry.reason.endswith(": deposit of 3 Dec not recorded")
    assert (total(), drift()) == (Decimal("8000"), Decimal("0"))
    assert services.balance_verify() == []
    assert sync("lenco", "8000", ledger_seq_at_read=ledger_now()) == Decimal("0")


def test_booking_a_drift_other_than_the_one_now_is_refused_and_changes_nothing(ops: User) -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("lenco", "8000", ledger_seq_at_read=ledger_now())
    shown = drift()
    sync("lenco", "9000", ledger_seq_at_read=ledger_now())  # a sync came in after the page was shown
    entries_before = LedgerEntry.objects.count()

    with pytest.raises(services.DriftChanged):
        services.balance_drift_book(currency="NGN", expected=shown, reason="deposit", actor=ops)

    assert (total(), LedgerEntry.objects.count()) == (Decimal("5000"), entries_before)


@pytest.mark.parametrize(("reason", "reading"), [("", "8000"), ("deposit", None), ("deposit", "5000")])
def test_booking_needs_a_reason_a_reading_and_a_drift(ops: User, reason: str, reading: str | None) -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    if reading:
        sync("lenco", reading, ledger_seq_at_read=ledger_now())
    entries_before = LedgerEntry.objects.count()

    with pytest.raises(Refused):
        services.balance_drift_book(
            currency="NGN", expected=Decimal(reading or "0") - Decimal("5000"), reason=reason, actor=ops
        )

    assert (total(), LedgerEntry.objects.count()) == (Decimal("5000"), entries_before)
