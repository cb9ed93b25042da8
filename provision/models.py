"""Node-wide records.

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
