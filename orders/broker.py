"""django-q2's ORM broker, which also looks for newly received orders before handing out tasks
(``Q_CLUSTER["broker_class"]``; see ``orders.dispatch``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django_q.brokers.orm import ORM

from orders import dispatch

logger = logging.getLogger(__name__)


class OrderQueueBroker(ORM):
    _dispatched_at = 0.0

    def dequeue(self) -> Any:
        """New orders' tasks, claimed for this cluster as they are written (``dispatch.claim_received``);
        otherwise what the queue table holds, as django-q2's ORM broker hands it out."""
        now = time.monotonic()
        if now - self._dispatched_at >= dispatch.DISPATCH_INTERVAL:
            self._dispatched_at = now
            try:
                claimed = dispatch.claim_received(until=self.timeout(None), limit=dispatch.CLAIM_LIMIT)
            except Exception:  # the queue's own tasks still flow; the next look tries again
                logger.exception("orders.dispatch_failed")
            else:
                if claimed:
                    logger.debug("orders.dispatched", extra={"count": len(claimed)})
                    return claimed
        return super().dequeue()
