"""Orders the aggregator assigns to this node, and the outbox of calls the node owes the aggregator.

Order state machine (django-fsm-2; ``status`` is protected, so only transitions change it)::

    received --begin_accept--> accepting --confirm_accept--> accepted --start_payout--> paying
       |  |                        |                            |  --hold--> held --start_payout--> paying
       |  |                        --accept_refused--> lost     |             |
       |  --decline--> declined                                 --cancel--> cancelled <--cancel--
       --expire--> expired

    paying --payout_succeeded--> paid --fulfil_reported--> fulfilled
    paying --payout_failed--> cancelled           (release; fulfil "failed" reported)
    paying --payout_unknown--> needs_review --resolve_paid--> paid
                                            --resolve_not_paid--> cancelled
    accepted / held --mark_paid--> paid          (staff paid outside the node; external reference)
    paid / fulfilled --payout_reversed--> reversed --close_reversal--> cancelled
                                                  (the PSP took the payout back: money credited back,
                                                   staff resolve it with the aggregator; never re-sent)
    lost --give_back--> cancelled                 (a 201 arrived after the order was settled as not ours:
                                                   cancel reported, so the aggregator reassigns it)

Invariants
    * One Order per aggregator ``order_id`` (unique); a redelivery never creates a second row.
    * Transitions run inside services that hold the row lock (``order_lock``); the FSM field is
      protected and ``ConcurrentTransitionMixin`` refuses to save a stale state.
    * One accept call per order at a time: ``accept_claimed_until`` is taken under the row lock before the
      call. An attempt that starts after an earlier one ended without an applied answer treats a 404 as
      "outcome unknown" (the aggregator's order list decides), never as a refusal.
    * Balance effects: begin_accept reserves, accept_refused / cancel / payout_failed / resolve_not_paid
      release, payout_succeeded / resolve_paid / mark_paid debit. Each is a ledger entry written in the
      same transaction (``balances.services``).
    * Outbox rows (``OutboxMessage``) are written in the transaction of the state change that implies
      them and delivered by the worker; no HTTP call is made while a row lock is held.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description

from balances.models import money_field


def fsm_logged(func: Any) -> Any:
    """Record ``by`` (the acting user) and ``description`` (why) of a transition in django-fsm-log."""
    return fsm_log_by(fsm_log_description(func))


class OrderStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    ACCEPTING = "accepting", "Accepting"
    ACCEPTED = "accepted", "Accepted"
    HELD = "held", "Held for approval"
    PAYING = "paying", "Paying"
    PAID = "paid", "Paid"
    FULFILLED = "fulfilled", "Fulfilled"
    NEEDS_REVIEW = "needs_review", "Needs review"
    CANCELLED = "cancelled", "Cancelled"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    LOST = "lost", "Not ours (accept refused)"
    REVERSED = "reversed", "Payout reversed by the PSP"


# States in which the node holds a reservation for the order.
RESERVED_STATES = (
    OrderStatus.ACCEPTING,
    OrderStatus.ACCEPTED,
    OrderStatus.HELD,
    OrderStatus.PAYING,
    OrderStatus.NEEDS_REVIEW,
)
# States in which the aggregator considers the order ours (it answered 201 to accept).
ACCEPTED_STATES = (
    OrderStatus.ACCEPTED,
    OrderStatus.HELD,
    OrderStatus.PAYING,
    OrderStatus.PAID,
    OrderStatus.FULFILLED,
    OrderStatus.NEEDS_REVIEW,
    OrderStatus.CANCELLED,
    OrderStatus.REVERSED,
)
# States a staff path that ends in "paid" starts from (pay via PSP or bank file, mark paid, resolve a
# review as paid): the "maker" half of maker-checker is recorded in them (orders.services).
PAYOUT_APPROVAL_STATES = (
    OrderStatus.ACCEPTED,
    OrderStatus.HELD,
    OrderStatus.NEEDS_REVIEW,
)
FINAL_STATES = (
    OrderStatus.FULFILLED,
    OrderStatus.CANCELLED,
    OrderStatus.DECLINED,
    OrderStatus.EXPIRED,
    OrderStatus.LOST,
)


class Flavour(models.TextChoices):
    NEW_ORDER = "new_order", "POST /new_order (aggregator)"
    SEED = "seed", "POST /orders (seed)"


class DeclineReason(models.TextChoices):
    """Machine-readable reasons; the text sent to the aggregator is the label."""

    UNSUPPORTED_CURRENCY = "unsupported_currency", "Unsupported currency"
    UNSUPPORTED_INSTITUTION = "unsupported_institution", "Unsupported institution"
    AMOUNT_BELOW_MINIMUM = "amount_below_minimum", "Amount below minimum"
    AMOUNT_ABOVE_MAXIMUM = "amount_above_maximum", "Amount above maximum"
    INSUFFICIENT_BALANCE = "insufficient_balance", "Insufficient funds"
    ORDER_EXPIRED = "order_expired", "Order expired"
    NODE_PAUSED = "node_paused", "Node paused"
    PSP_UNAVAILABLE = "psp_unavailable", "No payout provider available"
    STAFF_DECLINED = "staff_declined", "Declined by operator"


class Order(ConcurrentTransitionMixin, models.Model):
    order_id = models.CharField(max_length=64, unique=True, help_text="The aggregator's order id.")
    flavour = models.CharField(max_length=16, choices=Flavour.choices)
    amount = money_field()
    currency = models.CharField(max_length=7, db_index=True)
    institution = models.CharField(max_length=32)
    exclude_psps = models.JSONField(default=list, blank=True)
    # Seed flavour carries these in the offer; the real aggregator sends the recipient in the accept answer.
    reference = models.CharField(max_length=128, blank=True, db_index=True)
    token = models.CharField(max_length=32, blank=True)
    token_amount = models.CharField(max_length=64, blank=True)
    network = models.CharField(max_length=64, blank=True)
    account_identifier = models.CharField(max_length=64, blank=True)
    account_name = models.CharField(max_length=255, blank=True)
    memo = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    accept_amount = money_field(null=True, blank=True, help_text="Amount in the accept answer.")

    status = FSMField(
        default=OrderStatus.RECEIVED, choices=OrderStatus.choices, protected=True, db_index=True
    )
    decline_reason = models.CharField(max_length=32, choices=DeclineReason.choices, blank=True)
    cancel_reason = models.CharField(max_length=255, blank=True)
    psp = models.CharField(max_length=32, blank=True, help_text="PSP that paid (or is paying) the order.")
    psp_tx_id = models.CharField(max_length=128, blank=True, help_text="The txId reported to the aggregator.")
    external_reference = models.CharField(max_length=128, blank=True)
    payout_attempted = models.BooleanField(default=False)
    accept_attempts = models.PositiveIntegerField(default=0)
    accept_outcome_unknown = models.BooleanField(default=False)
    accept_claimed_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="An accept call is in flight until then."
    )
    # The offer's request id (log correlation).
    request_id = models.CharField(max_length=128, blank=True, editable=False)
    accept_due_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The lane decides or accepts the offer (or settles a lost accept) from then on.",
    )
    payout_due_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The payout lane starts the payout from then on."
    )

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    accept_deadline = models.DateTimeField(help_text="The aggregator's order request expires here.")
    accepted_at = models.DateTimeField(null=True, blank=True)
    hold_until = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="order_amount_positive"),
        ]
        permissions = [
            ("approve_order", "Can approve, accept, decline and cancel orders"),
            ("pay_order", "Can pay orders and mark them paid"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} ({self.status})"

    # --- transitions: guards and fields only; services lock, write the ledger and the outbox ---------------

    @fsm_logged
    @transition(field=status, source=OrderStatus.RECEIVED, target=OrderStatus.ACCEPTING)
    def begin_accept(self, *, by: Any = None, description: str = "") -> None:
        self.accept_attempts = 0

    @fsm_logged
    @transition(field=status, source=OrderStatus.ACCEPTING, target=OrderStatus.ACCEPTED)
    def confirm_accept(self, *, at: Any, by: Any = None, description: str = "") -> None:
        self.accepted_at = at
        self.accept_due_at = None

    @fsm_logged
    @transition(field=status, source=OrderStatus.ACCEPTING, target=OrderStatus.LOST)
    def accept_refused(self, *, at: Any, by: Any = None, description: str = "") -> None:
        self.finished_at = at
        self.accept_due_at = None

    @fsm_logged
    @transition(field=status, source=OrderStatus.LOST, target=OrderStatus.CANCELLED)
    def give_back(self, *, reason: str, at: Any, by: Any = None, description: str = "") -> None:
        """A 201 arrived after the order was settled as not ours: cancel it so the aggregator reassigns it."""
        self.cancel_reason = reason
        self.finished_at = at

    @fsm_logged
    @transition(field=status, source=OrderStatus.ACCEPTED, target=OrderStatus.HELD)
    def hold(self, *, until: Any, by: Any = None, description: str = "") -> None:
        self.hold_until = until
        self.payout_due_at = None

    @fsm_logged
    @transition(field=status, source=[OrderStatus.ACCEPTED, OrderStatus.HELD], target=OrderStatus.PAYING)
    def start_payout(self, *, psp: str, by: Any = None, description: str = "") -> None:
        self.psp = psp
        self.payout_attempted = True
        self.payout_due_at = None

    @fsm_logged
    @transition(field=status, source=OrderStatus.PAYING, target=OrderStatus.PAID)
    def payout_succeeded(self, *, at: Any, by: Any = None, description: str = "") -> None:
        self.paid_at = at

    @fsm_logged
    @transition(field=status, source=OrderStatus.PAYING, target=OrderStatus.CANCELLED)
    def payout_failed(self, *, reason: str, at: Any, by: Any = None, description: str = "") -> None:
        self.cancel_reason = reason
        self.finished_at = at

    @fsm_logged
    @transition(field=status, source=OrderStatus.PAYING, target=OrderStatus.ACCEPTED)
    def payout_refused(self, *, by: Any = None, description: str = "") -> None:
        """The PSP refused before taking money: the order may go to the next PSP."""

    @fsm_logged
    @transition(field=status, source=OrderStatus.PAYING, target=OrderStatus.NEEDS_REVIEW)
    def payout_unknown(self, *, by: Any = None, description: str = "") -> None:
        pass

    @fsm_logged
    @transition(field=status, source=OrderStatus.NEEDS_REVIEW, target=OrderStatus.PAID)
    def resolve_paid(self, *, at: Any, by: Any = None, description: str = "") -> None:
        self.paid_at = at

    @fsm_logged
    @transition(field=status, source=OrderStatus.NEEDS_REVIEW, target=OrderStatus.CANCELLED)
    def resolve_not_paid(self, *, reason: str, at: Any, by: Any = None, description: str = "") -> None:
        self.cancel_reason = reason
        self.finished_at = at

    @fsm_logged
    @transition(field=status, source=[OrderStatus.ACCEPTED, OrderStatus.HELD], target=OrderStatus.PAID)
    def mark_paid(self, *, external_reference: str, at: Any, by: Any = None, description: str = "") -> None:
        self.payout_due_at = None
        self.external_reference = external_reference
        self.psp = "manual"
        self.psp_tx_id = external_reference
        self.paid_at = at

    @fsm_logged
    @transition(field=status, source=OrderStatus.PAID, target=OrderStatus.FULFILLED)
    def fulfil_reported(self, *, at: Any, by: Any = None, description: str = "") -> None:
        self.finished_at = at

    @fsm_logged
    @transition(field=status, source=[OrderStatus.ACCEPTED, OrderStatus.HELD], target=OrderStatus.CANCELLED)
    def cancel(self, *, reason: str, at: Any, by: Any = None, description: str = "") -> None:
        self.cancel_reason = reason
        self.finished_at = at
        self.payout_due_at = None

    @fsm_logged
    @transition(field=status, source=[OrderStatus.PAID, OrderStatus.FULFILLED], target=OrderStatus.REVERSED)
    def payout_reversed(self, *, by: Any = None, description: str = "") -> None:
        """The PSP took back a payout it had made: the money is ours again; staff must resolve it."""

    @fsm_logged
    @transition(field=status, source=OrderStatus.REVERSED, target=OrderStatus.CANCELLED)
    def close_reversal(self, *, reason: str, at: Any, by: Any = None, description: str = "") -> None:
        self.cancel_reason = reason
        self.finished_at = at

    @fsm_logged
    @transition(field=status, source=OrderStatus.RECEIVED, target=OrderStatus.DECLINED)
    def decline(self, *, reason: str, at: Any, by: Any = None, description: str = "") -> None:
        self.decline_reason = reason
        self.finished_at = at
        self.accept_due_at = None

    @fsm_logged
    @transition(field=status, source=OrderStatus.RECEIVED, target=OrderStatus.EXPIRED)
    def expire(self, *, at: Any, by: Any = None, description: str = "") -> None:
        self.finished_at = at
        self.accept_due_at = None

    # --- cheap properties ------------------------------------------------------------------------------

    @property
    def is_accepted(self) -> bool:
        return self.status in ACCEPTED_STATES

    def terms(self) -> tuple[Decimal, str, str]:
        return (self.amount, self.currency, self.institution)

    def hold_expired(self, *, now: datetime) -> bool:
        """Held past its approval deadline: the timeout cancels it, and the node never pays it."""
        return self.status == OrderStatus.HELD and self.hold_until is not None and self.hold_until <= now


class OutboxKind(models.TextChoices):
    DECLINE = "decline", "Decline"
    FULFIL = "fulfil", "Fulfil"
    CANCEL = "cancel", "Cancel"
    BALANCES = "balances", "Balances"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    REFUSED = "refused", "Refused (final)"
    ABANDONED = "abandoned", "Abandoned by staff"


class OutboxMessage(models.Model):
    """One call the node owes the aggregator. Delivered at least once; each delivery is idempotent."""

    kind = models.CharField(max_length=16, choices=OutboxKind.choices)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="outbox")
    dedupe_key = models.CharField(max_length=160, unique=True)
    path = models.CharField(max_length=255, help_text="Path under the provider API prefix.")
    payload = models.JSONField(help_text="Body without the timestamp; signed afresh on every attempt.")
    status = models.CharField(
        max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due")]
        permissions = [
            ("replay_outboxmessage", "Can send outbox messages again"),
            ("abandon_outboxmessage", "Can abandon outbox messages (the aggregator is never told)"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.dedupe_key} ({self.status})"


class ReviewListEntry(models.Model):
    """A recipient whose payouts always wait for staff approval, in auto mode too."""

    account_identifier = models.CharField(max_length=64)
    institution = models.CharField(
        max_length=32, blank=True, help_text="Empty: this account at any institution."
    )
    reason = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_identifier"]
        verbose_name_plural = "review list"
        constraints = [
            models.UniqueConstraint(fields=["account_identifier", "institution"], name="review_list_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.account_identifier} @ {self.institution or 'any'}"
