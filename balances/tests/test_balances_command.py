"""manage.py balances: staff changes audited to the ledger; verify recomputes from the ledger."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from balances import selectors
from balances.models import Balance, EntryKind, LedgerEntry

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("balances", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_credit_is_recorded_with_the_acting_user() -> None:
    ops = get_user_model().objects.create_user(username="ops")

    output = run("credit", "--currency", "ngn", "--amount", "1500.50", "--reason", "top-up", "--actor", "ops")

    assert output.strip() == "NGN total=1500.5000 reserved=0.0000 available=1500.5000"
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.actor, entry.reason) == (
        EntryKind.CREDIT,
        Decimal("1500.5"),
        ops,
        "top-up",
    )


def test_set_writes_the_difference_as_an_adjust_entry() -> None:
    run("credit", "--currency", "NGN", "--amount", "1000", "--reason", "a")

    run("set", "--currency", "NGN", "--amount", "400", "--reason", "statement")

    assert selectors.balance_get(currency="NGN").total == Decimal("400")
    adjust = LedgerEntry.objects.get(kind=EntryKind.ADJUST)
    assert adjust.total_delta == Decimal("-600")


def test_change_that_would_go_negative_is_refused_and_nothing_changes() -> None:
    run("credit", "--currency", "NGN", "--amount", "100", "--reason", "a")

    with pytest.raises(CommandError, match="negative"):
        run("adjust", "--currency", "NGN", "--amount", "-101", "--reason", "oops")

    assert selectors.balance_get(currency="NGN").total == Decimal("100")
    assert LedgerEntry.objects.count() == 1


def test_reason_is_required() -> None:
    with pytest.raises(CommandError, match="reason"):
        run("credit", "--currency", "NGN", "--amount", "100")


def test_verify_passes_when_ledger_and_balances_agree() -> None:
    run("credit", "--currency", "NGN", "--amount", "100", "--reason", "a")

    assert run("verify").strip() == "ledger and balances agree"


def test_verify_fails_on_drift() -> None:
    run("credit", "--currency", "NGN", "--amount", "100", "--reason", "a")
    Balance.objects.filter(currency="NGN").update(total=Decimal("150"))

    with pytest.raises(CommandError, match="disagree"):
        run("verify")


def test_crossing_the_critical_threshold_records_an_alert_and_clears_it(settings: object) -> None:
    from balances.models import BalanceAlert

    settings.CRITICAL_BALANCE_THRESHOLD = {"NGN": Decimal("500")}  # type: ignore[attr-defined]
    run("credit", "--currency", "NGN", "--amount", "1000", "--reason", "a")
    run("adjust", "--currency", "NGN", "--amount", "-600", "--reason", "b")

    alert = BalanceAlert.objects.get()
    assert (alert.currency, alert.available, alert.threshold, alert.resolved_at) == (
        "NGN",
        Decimal("400"),
        Decimal("500"),
        None,
    )
    run("credit", "--currency", "NGN", "--amount", "200", "--reason", "c")
    alert.refresh_from_db()
    assert alert.resolved_at is not None
