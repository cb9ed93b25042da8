"""Template filters for money, times and countdowns (``provision.formatting``): ``{% load ops_format %}``.

{{ order.amount|money:order.currency }}   40,000.00 NGN
{{ order.received_at|when }}              2026-12-03 14:01:07 UTC
{{ order.hold_until|countdown }}          45 s left / overdue by 12 s
{{ order.received_at|ago }}               3 min 05 s ago
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template

from provision import formatting

register = template.Library()


@register.filter
def money(amount: Decimal | int | None, currency: str) -> str:
    return formatting.money(amount, currency)


@register.filter
def money_amount(amount: Decimal | int | None, currency: str) -> str:
    return formatting.money_amount(amount, currency)


@register.filter
def when(moment: datetime | None) -> str:
    return formatting.when(moment)


@register.filter
def countdown(until: datetime | None) -> str:
    return formatting.countdown(until)


@register.filter
def ago(since: datetime | None) -> str:
    return formatting.age(since)
