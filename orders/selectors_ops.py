"""Reads behind the ops queue and dashboard on the admin index (a fixed number of queries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from balances import selectors as balance_selectors
from orders.models import FINAL_STATES, Order, OrderStatus
from provision import runtime

STUCK_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class QueueSection:
    key: str
    title: str
    orders: list[Order]
    count: int


def ops_queue(*, now: datetime | None = None, limit: int = 20) -> list[QueueSection]:
    """What waits for staff, oldest first: held payouts, staff-policy offers, reviews, stuck orders."""
    now = now or timezone.now()
    sections = [
        ("held", "Payouts held for approval", Q(status=OrderStatus.HELD), "hold_until"),
        (
            "received",
            "Offers waiting for staff (staff policy)",
            Q(status=OrderStatus.RECEIVED),
            "received_at",
        ),
        ("review", "Payouts that need review", Q(status=OrderStatus.NEEDS_REVIEW), "updated_at"),
        ("reversed", "Payouts the PSP reversed", Q(status=OrderStatus.REVERSED), "updated_at"),
        (
            "stuck",
            "Stuck for more than 5 minutes",
            ~Q(
                status__in=[
                    *FINAL_STATES,
                    OrderStatus.HELD,
                    OrderStatus.NEEDS_REVIEW,
                    OrderStatus.RECEIVED,
                    OrderStatus.REVERSED,
                ]
            )
            & Q(updated_at__lt=now - STUCK_AFTER),
            "updated_at",
        ),
    ]
    result = []
    for key, title, condition, ordering in sections:
        queryset = Order.objects.filter(condition)
        if key == "received" and not runtime.current().staff_policy:
            queryset = queryset.none()
        result.append(QueueSection(key, title, list(queryset.order_by(ordering)[:limit]), queryset.count()))
    return result


def ops_dashboard(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    day_ago = now - timedelta(hours=24)
    counts = dict(Order.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    recent = Order.objects.filter(received_at__gte=day_ago, payout_attempted=True)
    paid = recent.filter(status__in=[OrderStatus.PAID, OrderStatus.FULFILLED]).count()
    failed = recent.filter(status=OrderStatus.CANCELLED).count()
    volume = (
        Order.objects.filter(paid_at__gte=day_ago)
        .values("currency")
        .annotate(total=Sum("amount"), n=Count("pk"))
        .order_by("currency")
    )
    waiting = (
        Order.objects.filter(status__in=[OrderStatus.HELD, OrderStatus.RECEIVED, OrderStatus.NEEDS_REVIEW])
        .order_by("received_at")
        .first()
    )
    balances = []
    for currency, balance in balance_selectors.balances_by_currency().items():
        threshold = balance_selectors.threshold_for(currency=currency)
        balances.append(
            {
                "currency": currency,
                "total": balance.total,
                "reserved": balance.reserved,
                "available": balance.available,
                "critical": threshold is not None and balance.available < threshold,
                "threshold": threshold,
            }
        )
    return {
        "counts": [(status.label, counts.get(status.value, 0)) for status in OrderStatus],
        "success_rate": (Decimal(paid * 100) / (paid + failed)).quantize(Decimal("0.1"))
        if paid + failed
        else None,
        "volume": list(volume),
        "oldest_waiting": waiting,
        "balances": balances,
        "alerts": balance_selectors.open_alerts(),
    }
