"""What an ops person sees before an order action runs: one row per selected order, with what to check.

Every order action in admin (from the list or an order's page) shows this page first and runs only when
it is confirmed. Each row: recipient name and the name check's result, account (masked, as everywhere),
institution (code and name), memo, amount with currency, the time left before the hold (or the offer)
expires, and, for an action that moves money, the balance after it. Reads only: no PSP call, no lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from django_fsm_log.models import StateLog

from balances import selectors as balance_selectors
from orders.models import Order, OrderStatus
from provision import formatting
from provision.logging import mask_account
from psp import banks

NAME_CHECK_PREFIX = "Name check:"

# How each action moves the balance of the order's currency, if it does: (what the column says, the sign
# applied to the total, to the available funds).
PAYMENTS = {"approve_payouts", "mark_paid", "resolve_review", "export_bank_file"}
BALANCE_EFFECT = {
    **{action: ("Total after payment", -1, 0) for action in PAYMENTS},
    "resolve_review": ("Total if paid", -1, 0),  # not paid releases instead: the total stays
    "cancel_orders": ("Available after release", 0, 1),
}


@dataclass(frozen=True)
class ConfirmRow:
    order: Order
    recipient: str
    name_check: str
    name_check_doubtful: bool
    account: str
    institution_code: str
    institution_name: str
    memo: str
    amount: str
    time_left: str
    time_left_urgent: bool
    balance_after: str


def money(amount: Decimal, currency: str) -> str:
    """``40,000.00 NGN`` (``provision.formatting``: the one way the console writes money)."""
    return formatting.money(amount, currency)


def time_left(until: datetime | None, *, now: datetime) -> tuple[str, bool]:
    """``45 s`` under a minute, ``3 min 05 s`` above, ``overdue by 12 s`` past it; True when under a
    minute or past (the page marks it)."""
    if until is None:
        return formatting.EMPTY, False
    seconds = int((until - now).total_seconds())
    if seconds < 0:
        return f"overdue by {formatting.duration(-seconds)}", True
    return formatting.duration(seconds), seconds < 60


def _name_checks(orders: list[Order]) -> dict[int, str]:
    """The latest name-check verdict the transition log holds per order (a hold says why it held)."""
    logs = (
        StateLog.objects.filter(
            content_type=ContentType.objects.get_for_model(Order),
            object_id__in=[order.pk for order in orders],
            description__startswith=NAME_CHECK_PREFIX,
        )
        .order_by("timestamp", "pk")
        .values_list("object_id", "description")
    )
    return {int(object_id): description for object_id, description in logs}


def _name_check(order: Order, recorded: str | None) -> tuple[str, bool]:
    if recorded:
        return recorded.removeprefix(NAME_CHECK_PREFIX).strip(), True
    if settings.PAYOUT_NAME_CHECK == "off":
        return "Not checked (PAYOUT_NAME_CHECK is off)", False
    if not order.account_name.strip():
        # Before accept the aggregator has not sent the recipient yet; after it, a missing name is a doubt.
        return "Not checked: no name on the order", order.status != OrderStatus.RECEIVED
    return (
        f"No doubt recorded; checked again through the PSP before it pays ({settings.PAYOUT_NAME_CHECK})",
        False,
    )


def confirm_rows(orders: Iterable[Order], *, action: str, now: datetime | None = None) -> list[ConfirmRow]:
    """The rows of the confirmation page of ``action`` for ``orders`` (in the order they are acted on)."""
    now = now or timezone.now()
    orders = list(orders)
    checks = _name_checks(orders)
    institutions = banks.aggregator_institutions()
    effect = BALANCE_EFFECT.get(action)
    running: dict[str, tuple[Decimal, Decimal]] = {}
    rows = []
    for order in orders:
        check, doubtful = _name_check(order, checks.get(order.pk))
        until = order.hold_until if order.status == OrderStatus.HELD else None
        if order.status == OrderStatus.RECEIVED:
            until = order.accept_deadline
        left, urgent = time_left(until, now=now)
        balance_after = ""
        if effect is not None:
            if order.currency not in running:
                balance = balance_selectors.balance_get(currency=order.currency)
                running[order.currency] = (balance.total, balance.available)
            total, available = running[order.currency]
            total += effect[1] * order.amount
            available += effect[2] * order.amount
            running[order.currency] = (total, available)
            balance_after = money(total if effect[1] else available, order.currency)
        rows.append(
            ConfirmRow(
                order=order,
                recipient=order.account_name or "—",
                name_check=check,
                name_check_doubtful=doubtful,
                account=mask_account(order.account_identifier) or "—",
                institution_code=order.institution,
                institution_name=institutions.get(order.currency, {}).get(order.institution, ""),
                memo=order.memo or "—",
                amount=money(order.amount, order.currency),
                time_left=left,
                time_left_urgent=urgent,
                balance_after=balance_after,
            )
        )
    return rows


def balance_column(action: str) -> str:
    """The heading of the balance column for ``action``; empty when the action moves no money."""
    effect = BALANCE_EFFECT.get(action)
    return effect[0] if effect else ""
