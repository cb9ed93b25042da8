"""Count order transitions and declines for /metrics once the transaction that made them commits."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from provision import metrics, notify


def count_transition(sender: Any, instance: Any, name: str, source: Any, target: Any, **kwargs: Any) -> None:
    transaction.on_commit(partial(metrics.ORDER_TRANSITIONS.labels(transition=name, target=str(target)).inc))
    if name == "decline":
        reason = str(getattr(instance, "decline_reason", "") or "unknown")
        transaction.on_commit(partial(metrics.ORDER_DECLINES.labels(reason=reason).inc))


def notify_transition(sender: Any, instance: Any, name: str, source: Any, target: Any, **kwargs: Any) -> None:
    """A hold, a review or a reversal is told to staff once (``provision.notify``), recorded in the
    transaction of the transition; the send runs on the worker after the commit."""
    kind = notify.ORDER_KINDS.get(target)
    if kind is not None:
        notify.notification_open_for_order(order=instance, kind=kind)
