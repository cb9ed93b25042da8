"""Node-wide records.

Heartbeat      when each long-running process (the payout lane) last said it was alive.
NodeControl    one row: whether ops paused the node (new offers are declined with "Node paused").
NodeSettings   one row: runtime settings staff with the settings role changed in admin. Each field left
               empty means "the environment's value" (``provision.runtime`` merges the two).
Notification   one event that needs a person (a held order, a PSP circuit opened, ...), sent by email and
               chat. At most one *open* notification per (kind, subject): the event is told once, however
               often it is seen again, until its condition clears (``resolved_at``).
UsedSignature  signatures of timestamped inbound requests seen inside the replay window; a unique
               constraint makes "seen before" hold across web processes. Old rows are purged by
               the worker.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class UsedSignature(models.Model):
    signature = models.CharField(max_length=128, unique=True)
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.signature[:12]


class NodeControl(models.Model):
    """Runtime switches ops flip from admin without a restart (a single row, pk=1)."""

    paused = models.BooleanField(
        default=False, help_text="Decline every new offer with the reason 'Node paused'."
    )
    paused_reason = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "node control"

    def __str__(self) -> str:
        return "paused" if self.paused else "running"

    @classmethod
    def current(cls) -> NodeControl:
        control, _ = cls.objects.get_or_create(pk=1)
        return control


class Heartbeat(models.Model):
    """When a long-running process last said it was alive (``name``: the process kind, e.g. payout_lane).
    Readiness (``/health/ready``) reports the age of each."""

    name = models.CharField(max_length=32, unique=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%H:%M:%S}"

    @classmethod
    def beat(cls, name: str) -> None:
        cls.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})


class NodeSettings(models.Model):
    """Runtime settings staff changed in admin (a single row, pk=1). Empty means "as the environment says";
    read through ``provision.runtime.current()``, never directly."""

    provision_mode = models.CharField(
        max_length=8, blank=True, choices=[("auto", "auto"), ("manual", "manual")], verbose_name="mode"
    )
    manual_policy = models.CharField(max_length=8, blank=True, choices=[("hold", "hold"), ("staff", "staff")])
    manual_approval_timeout = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], verbose_name="approval timeout (seconds)"
    )
    min_order_amount = models.CharField(max_length=255, blank=True)
    max_order_amount = models.CharField(max_length=255, blank=True)
    manual_review_above = models.CharField(max_length=255, blank=True, verbose_name="review above")
    maker_checker_above = models.CharField(max_length=255, blank=True)
    critical_balance_threshold = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "runtime settings"
        verbose_name_plural = "runtime settings"

    def __str__(self) -> str:
        return "runtime settings"


class NotificationKind(models.TextChoices):
    HELD = "held", "Payout held for approval"
    OFFER = "offer", "Offer waiting for staff"
    REVIEW = "review", "Payout needs review"
    REVERSED = "reversed", "Payout reversed by the PSP"
    CIRCUIT_OPEN = "circuit_open", "PSP circuit open"
    OUTBOX_REFUSED = "outbox_refused", "Aggregator refused a call"
    OUTBOX_BACKLOG = "outbox_backlog", "Calls to the aggregator backing up"
    BALANCE_CRITICAL = "balance_critical", "Balance below its critical threshold"
    WORKER_SILENT = "worker_silent", "Worker (accept lane) silent"
    PAYOUT_LANE_SILENT = "payout_lane_silent", "Payout lane silent"
    DIGEST = "digest", "Several events (rate limit)"


class Notification(models.Model):
    """One event told to staff by email and chat (``provision.notify``).

    Sent by a task, never in a request: ``sent_at`` is set once every configured channel took it; each
    channel is marked on its own (``email_sent_at``, ``chat_sent_at``), so a retry after a failed chat post
    never mails twice. Over the hourly rate limit, the rest of a batch is folded into one digest
    (``folded_into``)."""

    kind = models.CharField(max_length=24, choices=NotificationKind.choices)
    subject = models.CharField(max_length=64, help_text="What it is about: an order id, a PSP, a currency.")
    text = models.TextField()
    path = models.CharField(max_length=255, help_text="Admin path of the order or list it is about.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When its condition cleared.")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    chat_sent_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    folded_into = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="folded"
    )

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="notification_one_open_per_subject",
            )
        ]
        indexes = [models.Index(fields=["sent_at", "next_attempt_at"], name="notification_due")]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} #{self.pk}"
