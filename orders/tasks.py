"""django-q2 jobs: each loads by id and calls one workflow or service function; each is safe to run twice.

Offers, payouts and deliveries are the lane's (``orders.payout_lane``), found due in the database; what
runs here is the timers (the sweep, the purges). ``order_process``, ``order_accept``,
``order_accept_settle``, ``outbox_deliver_due`` and ``outbox_deliver_order`` stay for tasks and one-off
schedules queued before the lane took that work, so they do not fail after an upgrade.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Success

from orders import services, workflow
from provision.models import UsedSignature

logger = logging.getLogger(__name__)

TASK_RESULTS_MAX_AGE = timedelta(days=1)


def order_process(*, order_pk: int) -> str:
    return workflow.order_advance(order_pk=order_pk)


def order_accept(*, order_pk: int) -> str:
    return workflow.order_accept(order_pk=order_pk).status


def order_accept_settle(*, order_pk: int) -> str:
    return workflow.order_advance(order_pk=order_pk)


def outbox_deliver_due() -> int:
    return services.outbox_deliver_due()


def outbox_deliver_order(*, order_pk: int) -> int:
    return services.outbox_deliver_due()


def sweep() -> dict[str, int]:
    """The safety net, every minute: expire what is overdue, and make due again the offers nothing will
    take by itself (waiting for staff when the policy has since changed). It calls no aggregator or PSP
    itself, so an outage cannot stall it; the lane takes what is due (leases keep two takers apart)."""
    now = timezone.now()
    return {
        "expired": services.order_expire_due(now=now),
        "made_due": services.orders_make_accept_due(now=now),
    }


def purge_used_signatures() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.HMAC_TIMESTAMP_AGE + settings.HMAC_FUTURE_SKEW + 60)
    deleted, _ = UsedSignature.objects.filter(seen_at__lt=cutoff).delete()
    return deleted


def purge_task_results() -> int:
    """Delete successful task results older than a day (the worker heartbeat only needs the newest)."""
    deleted, _ = Success.objects.filter(stopped__lt=timezone.now() - TASK_RESULTS_MAX_AGE).delete()
    return deleted
