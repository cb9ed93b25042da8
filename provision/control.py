"""Runtime switches staff flip from admin: pause and resume the node.

Pausing declines every new offer the node decides by itself (``orders.services.decide``), under every mode
and manual policy; orders already accepted go on (held ones still wait for staff, payouts still report).
"""

from __future__ import annotations

import logging

from django.db import transaction

from provision.models import NodeControl

logger = logging.getLogger(__name__)


@transaction.atomic(durable=True)
def node_pause_set(*, paused: bool, reason: str = "") -> NodeControl:
    """Pause (``paused=True``, with a reason) or resume the node; the same state twice is a no-op."""
    control, _ = NodeControl.objects.select_for_update().get_or_create(pk=1)
    if control.paused == paused and (not paused or control.paused_reason == reason):
        logger.info("node.pause_unchanged", extra={"paused": paused})
        return control
    control.paused = paused
    control.paused_reason = reason if paused else ""
    control.save()
    logger.warning("node.paused" if paused else "node.resumed", extra={"reason": reason})
    return control
