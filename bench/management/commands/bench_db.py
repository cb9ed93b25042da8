"""Bench-only database chores: fund the node, clear the intake phase's orders, summarise the outcome."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Count, Max


class Command(BaseCommand):
    help = "prepare | clear-intake | summary (bench settings only)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["prepare", "clear-intake", "summary"])
        parser.add_argument("--currency", default="NGN")
        parser.add_argument("--amount", default="100000000000")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "prepare":
            from balances import services as balance_services

            balance_services.balance_credit(
                currency=options["currency"], amount=Decimal(options["amount"]), reason="bench funds"
            )
            self.stdout.write(json.dumps({"credited": options["amount"]}))
        elif options["action"] == "clear-intake":
            self.stdout.write(json.dumps(_clear_intake()))
        else:
            self.stdout.write(json.dumps(_summary()))


@transaction.atomic
def _clear_intake() -> dict[str, int]:
    """Drop what the intake phase left (orders never processed: the worker was not running) and the
    queued kicks for them, so the end-to-end phase starts from an empty queue."""
    from django_q.models import OrmQ

    from bench.models import FloorRow
    from orders.models import Order, OrderStatus
    from provision.models import UsedSignature

    orders, _ = Order.objects.filter(status=OrderStatus.RECEIVED).delete()
    queued, _ = OrmQ.objects.all().delete()
    floor, _ = FloorRow.objects.all().delete()
    signatures, _ = UsedSignature.objects.all().delete()
    return {"orders": orders, "queued": queued, "floor_rows": floor, "used_signatures": signatures}


def _summary() -> dict[str, Any]:
    from balances import services as balance_services
    from balances.models import EntryKind, LedgerEntry
    from orders.models import Order, OutboxMessage
    from psp.models import SandboxPayout, Transfer

    debits = (
        LedgerEntry.objects.filter(kind=EntryKind.DEBIT)
        .values("order")
        .annotate(n=Count("pk"))
        .aggregate(most=Max("n"))["most"]
    )
    transfers = Transfer.objects.values("order").annotate(n=Count("pk")).aggregate(most=Max("n"))["most"]
    payouts = (
        SandboxPayout.objects.values("reference").annotate(n=Count("pk")).aggregate(most=Max("n"))["most"]
    )
    return {
        "orders_by_status": dict(Order.objects.values_list("status").annotate(n=Count("pk")).order_by()),
        "outbox_by_status": dict(
            OutboxMessage.objects.values_list("status").annotate(n=Count("pk")).order_by()
        ),
        "sandbox_payouts": SandboxPayout.objects.count(),
        "max_debits_per_order": debits or 0,
        "max_transfers_per_order": transfers or 0,
        "max_payouts_per_reference": payouts or 0,
        "ledger_verify": balance_services.balance_verify(),
    }
