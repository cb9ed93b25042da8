"""Drift between the PSPs and the ledger: shown in admin, /metrics and `manage.py balances drift` until a
staff user (payer or superuser) books it with a reason; a sync never changes the ledger (issue 19)."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client

from balances import selectors, services
from balances.models import Balance, EntryKind, LedgerEntry
from orders import services as order_services
from orders.models import OrderStatus
from orders.tests.test_admin import held_order
from provision.testing import admin_client

pytestmark = pytest.mark.django_db
BALANCES = "/admin/balances/balance/"


def ledger_now() -> int:
    return selectors.ledger_seqs(currencies=["NGN"])["NGN"]


def sync(total: str, *, psp: str = "lenco") -> Decimal | None:
    return services.balance_sync_psp(
        psp=psp,
        currency="NGN",
        total=Decimal(total),
        available=Decimal(total),
        ledger_seq_at_read=ledger_now(),
    )


def in_role(username: str, *roles: str) -> tuple[User, Client]:
    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=roles))
    return user, admin_client(user)


def test_a_sync_after_a_mark_paid_shows_drift_and_never_undoes_the_debit() -> None:
    order = held_order()  # 100,000 NGN on the book, 3,750 reserved
    payer = User.objects.create_user(username="pam", is_staff=True)
    order_services.order_mark_paid(order_pk=order.pk, external_reference="BANK-1", actor=payer)
    entries_before = list(LedgerEntry.objects.values_list("pk", flat=True))

    drift = sync("100000")  # the PSP account did not pay it: it still holds 100,000

    balance = selectors.balance_get(currency="NGN")
    assert (balance.total, balance.reserved) == (Decimal("96250"), Decimal("0"))
    assert list(LedgerEntry.objects.values_list("pk", flat=True)) == entries_before
    assert drift == Decimal("3750")
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_the_balance_list_shows_what_the_psps_say_and_the_drift() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("8000")
    _user, viewer = in_role("vera", "viewer")

    page = viewer.get(BALANCES).content.decode()
    psp_page = viewer.get("/admin/balances/pspbalance/").content.decode()

    assert "8,000.00 NGN" in page
    assert '<b class="ops-bad">+3,000.00 NGN</b>' in page
    assert '<b class="ops-bad">+3,000.00 NGN</b>' in psp_page


def test_a_payer_books_the_drift_after_a_confirmation_page_with_a_reason() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("8000")
    payer, client = in_role("pam", "payer")
    balance = Balance.objects.get(currency="NGN")

    page = client.post(BALANCES, {"action": "book_drift", "_selected_action": [balance.pk]})
    done = client.post(
        BALANCES,
        {
            "action": "book_drift",
            "_selected_action": [balance.pk],
            "expected_NGN": "3000.0000",
            "reason": "deposit of 3 Dec not recorded",
            "apply": "Book the drift",
        },
        follow=True,
    )

    content = page.content.decode()
    assert "Book the drift into the ledger" in content
    assert 'name="expected_NGN" value="3000.0000"' in content
    assert "lenco: 8000.0000" in content
    assert b"NGN: booked +3,000.0000" in done.content
    entry = LedgerEntry.objects.get(kind=EntryKind.ADJUST)
    assert (entry.total_delta, entry.actor) == (Decimal("3000"), payer)
    assert entry.reason.endswith("deposit of 3 Dec not recorded")
    assert selectors.balance_get(currency="NGN").total == Decimal("8000")
    [logged] = LogEntry.objects.filter(object_id=str(balance.pk))
    assert (logged.user, logged.get_change_message()) == (
        payer,
        "Booked the drift +3000.0000 NGN: deposit of 3 Dec not recorded",
    )


def test_a_drift_that_changed_since_the_page_was_shown_is_not_booked() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("8000")
    _payer, client = in_role("pam", "payer")
    balance = Balance.objects.get(currency="NGN")
    sync("9000")  # a sync after the page was shown

    done = client.post(
        BALANCES,
        {
            "action": "book_drift",
            "_selected_action": [balance.pk],
            "expected_NGN": "3000.0000",
            "reason": "deposit",
            "apply": "Book the drift",
        },
        follow=True,
    )

    assert b"look again before booking it" in done.content
    assert not LedgerEntry.objects.filter(kind=EntryKind.ADJUST).exists()
    assert not LogEntry.objects.exists()


def test_booking_needs_a_reason() -> None:
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("8000")
    _payer, client = in_role("pam", "payer")
    balance = Balance.objects.get(currency="NGN")

    page = client.post(
        BALANCES,
        {
            "action": "book_drift",
            "_selected_action": [balance.pk],
            "expected_NGN": "3000.0000",
            "reason": "",
            "apply": "Book the drift",
        },
    )

    assert b"This field is required" in page.content
    assert selectors.balance_get(currency="NGN").total == Decimal("5000")


def test_metrics_show_the_drift_per_currency(client: Client, settings: Any) -> None:
    settings.METRICS_ALLOW_UNAUTHENTICATED = "loopback"
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("8000")

    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    assert 'provision_balance_drift{currency="NGN"} 3000.0' in body


def run(*args: str) -> str:
    out = StringIO()
    call_command("balances", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_command_shows_the_drift_and_books_it_with_the_amount_shown() -> None:
    User.objects.create_user(username="ops", is_staff=True)
    services.balance_credit(currency="NGN", amount=Decimal("5000"), reason="deposit")
    sync("8000")

    shown = run("drift")
    with pytest.raises(CommandError, match="look again"):
        run("book-drift", "--currency", "NGN", "--amount", "2999", "--reason", "fee", "--actor", "ops")
    with pytest.raises(CommandError, match="--actor is required"):
        run("book-drift", "--currency", "NGN", "--amount", "3000", "--reason", "deposit")
    booked = run(
        "book-drift", "--currency", "NGN", "--amount", "3000", "--reason", "deposit", "--actor", "ops"
    )

    assert shown.startswith("NGN drift=3000.0000 psps=8000.0000 unseen=0 ledger=5000.0000 last_read=")
    assert booked.strip() == "NGN total=8000.0000 reserved=0.0000 available=8000.0000"


def test_open_books_the_psps_figure_only_for_a_currency_whose_ledger_is_empty(settings: Any) -> None:
    settings.CURRENCIES = ["NGN", "KES"]
    ops = User.objects.create_user(username="ops", is_staff=True)
    services.balance_credit(currency="KES", amount=Decimal("10"), reason="deposit")
    for currency, amount in (("NGN", "8000"), ("KES", "500")):
        services.balance_sync_psp(
            psp="sandbox",
            currency=currency,
            total=Decimal(amount),
            available=Decimal(amount),
            ledger_seq_at_read=selectors.ledger_seqs(currencies=[currency])[currency],
        )

    output = run("open", "--reason", "opening balance", "--actor", "ops")

    assert output.strip() == "NGN total=8000.0000 reserved=0.0000 available=8000.0000"
    assert LedgerEntry.objects.get(kind=EntryKind.ADJUST).actor == ops
    assert selectors.balance_get(currency="KES").total == Decimal("10")
