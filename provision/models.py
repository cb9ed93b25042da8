"""Node-wide records.

Heartbeat      when each long-running process (the payout lane) last said it was alive.
NodeControl    one row: whether ops paused the node (new offers are declined with "Node paused").
UsedSignature  signatures of timestamped inbound requests seen inside the replay window; a unique
               constraint makes "seen before" hold across web processes. Old rows are purged by
               the worker.
"""

from __future__ import annotations

from django.db import models


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
        from django.utils import timezone

        cls.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})
