"""`make run`'s demo: the demo user is made, and books the sandbox's balances as the opening balances
(a sync records a PSP's figure but never changes the ledger by itself)."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from balances import selectors as balance_selectors
from balances.models import EntryKind, LedgerEntry

pytestmark = pytest.mark.django_db


def test_the_demo_user_books_the_sandbox_opening_balances_after_the_first_sync(settings: Any) -> None:
    settings.DEBUG = True
    settings.PSP = ["sandbox"]
    call_command("sync_balances", stdout=StringIO())

    call_command("ensure_demo_user", stdout=StringIO())

    demo = User.objects.get(username="demo")
    assert balance_selectors.balance_get(currency="NGN").total == Decimal("50000000")
    assert set(LedgerEntry.objects.values_list("kind", "actor")) == {(EntryKind.ADJUST, demo.pk)}
    assert balance_selectors.balance_drift(currency="NGN").amount == 0  # type: ignore[union-attr]
