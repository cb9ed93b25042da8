"""Balances per currency and the append-only ledger that explains them.

Objects
    Balance       one row per currency: ``total`` (money held at the PSPs) and ``reserved`` (promised to
                  accepted, unpaid orders). ``available = total - reserved``. The two columns are a cache
                  of the ledger: the sum of every entry's deltas.
    LedgerEntry   one row per balance change, never updated or deleted.
    PspBalance    the last figure each PSP reported for a currency (what /info lists per PSP), with where
                  the currency's ledger stood when it was read (``ledger_seq_at_read``) and the currency's
                  drift when it was recorded.
    BalanceAlert  a crossing of the critical threshold, shown to ops.

Invariants (database CHECK constraints, not only Python)
    reserved >= 0, total - reserved >= 0; an entry's amount > 0.

Kinds and their deltas
    CREDIT  total += a            RESERVE reserved += a         RELEASE reserved -= a
    DEBIT   total -= a, reserved -= a (a reserved payout left the account)
    ADJUST  total += signed delta: a correction to the PSPs' readings (``psp`` set: booked by a staff
            user with a reason, ``balances.services.balance_drift_book``; before that change, written by
            the sync itself with no actor) or a staff adjustment (no ``psp``: money that moved outside
            the orders, such as a fee)

Drift (``balances.selectors.balance_drift``): what the PSPs' last readings say the total should be, plus
the movements entered after those readings (the readings could not see them), minus the ledger's total.
A sync (``balances.services.balance_sync_psp``) records a reading and the drift; it never changes the
ledger. The book moves to the PSPs' figure only when a staff user books the drift, with a reason.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from balances.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS


def money_field(**kwargs: Any) -> models.DecimalField:  # type: ignore[type-arg,unused-ignore]
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)


class Balance(models.Model):
    currency = models.CharField(max_length=7, unique=True)
    total = money_field(default=Decimal("0"))
    reserved = money_field(default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["currency"]
        permissions = [
            ("book_drift", "Can book the drift between the PSPs' balances and the ledger, with a reason"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(reserved__gte=0), name="balance_reserved_non_negative"),
            models.CheckConstraint(
                condition=Q(total__gte=F("reserved")), name="balance_available_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.currency} total={self.total} reserved={self.reserved}"

    @property
    def available(self) -> Decimal:
        return self.total - self.reserved


class EntryKind(models.TextChoices):
    CREDIT = "CREDIT", "Credit"
    RESERVE = "RESERVE", "Reserve"
    RELEASE = "RELEASE", "Release"
    DEBIT = "DEBIT", "Debit"
    ADJUST = "ADJUST", "Adjust"


class LedgerEntry(models.Model):
    balance = models.ForeignKey(Balance, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=8, choices=EntryKind.choices)
    amount = money_field(help_text="Magnitude of the movement (always positive).")
    total_delta = money_field()
    reserved_delta = money_field()
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    psp = models.CharField(max_length=32, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_amount_positive"),
            models.UniqueConstraint(
                fields=["order", "kind"],
                condition=Q(kind__in=["RESERVE", "RELEASE", "DEBIT"]),
                name="ledger_one_movement_of_each_kind_per_order",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.amount} {self.balance_id}"


class PspBalance(models.Model):
    psp = models.CharField(max_length=32)
    currency = models.CharField(max_length=7)
    total = money_field()
    available = money_field()
    status = models.CharField(max_length=16, default="ok")
    snapshot_at = models.DateTimeField()
    ledger_seq_at_read = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Id of the currency's latest ledger entry when this figure was read (0: none yet).",
    )
    drift = money_field(
        default=Decimal("0"),
        help_text="The currency's drift when this figure was recorded: the PSPs' readings (plus the "
        "movements they could not see) minus the ledger's total.",
    )

    class Meta:
        ordering = ["psp", "currency"]
        constraints = [models.UniqueConstraint(fields=["psp", "currency"], name="psp_balance_unique")]

    def __str__(self) -> str:
        return f"{self.psp} {self.currency} {self.total}"


class BalanceAlert(models.Model):
    currency = models.CharField(max_length=7)
    available = money_field()
    threshold = money_field()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.currency} below {self.threshold} at {self.created_at:%Y-%m-%d %H:%M}"
