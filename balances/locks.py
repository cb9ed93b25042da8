"""Locking querysets. Lock order everywhere: Order, then Transfer, then Balance."""

from __future__ import annotations

from django.db.models import QuerySet

from balances.models import Balance


def balance_locked() -> QuerySet[Balance]:
    return Balance.objects.select_for_update(of=("self",)).order_by("pk")
