"""Compare the node's payouts with the PSPs' records and the aggregator's order list.

Read-only: it reports mismatches and changes nothing (ops decide, then act through admin or the
commands). HTTP calls are made with no lock held.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from orders.clients.aggregator import AggregatorClient, AggregatorConfig, AggregatorError
from orders.models import Order, OrderStatus, OutboxMessage, OutboxStatus
from psp import registry
from psp.base import PayoutStatus, PspError
from psp.models import Transfer, TransferStatus

logger = logging.getLogger(__name__)

PAID = (OrderStatus.PAID, OrderStatus.FULFILLED)
# A transfer whose outcome the node does not know for good yet: maybe sent, pending, or in review.
OPEN_TRANSFER_STATES = (TransferStatus.CREATED, TransferStatus.PENDING, TransferStatus.UNKNOWN)


@dataclass(frozen=True)
class Mismatch:
    kind: str
    order_id: str
    psp: str
    reference: str
    local: str
    remote: str
    detail: str = ""


def _check_transfer(transfer: Transfer) -> list[Mismatch]:
    order = transfer.order
    try:
        remote = registry.adapter(transfer.psp).get_payout(
            reference=transfer.reference, currency=transfer.currency
        )
    except PspError as exc:
        return [
            Mismatch(
                "psp_unreachable",
                order.order_id,
                transfer.psp,
                transfer.reference,
                transfer.status,
                "?",
                exc.message,
            )
        ]
    except KeyError:
        return []
    found: list[Mismatch] = []
    row = (
        order.order_id,
        transfer.psp,
        transfer.reference,
        f"{transfer.status}/{order.status}",
        str(remote.status),
    )
    if transfer.status == TransferStatus.REJECTED:
        # Refused before money moved, by the node's reading: the PSP must not have it.
        if remote.status != PayoutStatus.NOT_FOUND:
            found.append(Mismatch("rejected_but_at_psp", *row, detail="a second payout may have been made"))
        return found
    local_paid = transfer.status == TransferStatus.SUCCEEDED
    remote_paid = remote.status == PayoutStatus.SUCCEEDED
    if local_paid and not remote_paid:
        found.append(Mismatch("paid_locally_not_at_psp", *row))
    if remote_paid and order.status not in PAID:
        found.append(Mismatch("paid_at_psp_not_locally", *row))
    elif transfer.status in OPEN_TRANSFER_STATES:
        age = timezone.now() - transfer.created_at
        found.append(Mismatch("transfer_not_final", *row, detail=f"open for {_age(age)}"))
    if remote.amount is not None and remote.amount != transfer.amount:
        found.append(
            Mismatch("amount_difference", *row, detail=f"local {transfer.amount}, PSP {remote.amount}")
        )
    return found


def _age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _check_reported(since: datetime) -> list[Mismatch]:
    found = []
    paid = Order.objects.filter(status=OrderStatus.PAID, paid_at__gte=since)
    for order in paid:
        delivered = OutboxMessage.objects.filter(
            order=order, dedupe_key__endswith=":success", status=OutboxStatus.DELIVERED
        ).exists()
        if not delivered:
            found.append(
                Mismatch(
                    "paid_not_reported_fulfilled",
                    order.order_id,
                    order.psp,
                    order.psp_tx_id,
                    order.status,
                    "-",
                )
            )
    return found


def _check_aggregator(client: AggregatorClient) -> list[Mismatch]:
    found = []
    for currency in settings.CURRENCIES:
        for status in ("processing", "validated"):
            try:
                rows = client.list_orders(currency=currency, status=status, page_size=100)
            except AggregatorError as exc:
                found.append(Mismatch("aggregator_unreachable", "-", "-", "-", "-", status, exc.message))
                continue
            ids = [str(row.get("id")) for row in rows]
            local = {o.order_id: o for o in Order.objects.filter(order_id__in=ids)}
            for order_id in ids:
                order = local.get(order_id)
                if order is None:
                    found.append(
                        Mismatch("aggregator_order_unknown_locally", order_id, "-", "-", "-", status)
                    )
                elif status == "processing" and order.status in PAID:
                    found.append(
                        Mismatch(
                            "paid_but_aggregator_processing",
                            order_id,
                            order.psp,
                            order.psp_tx_id,
                            order.status,
                            status,
                        )
                    )
                elif status == "validated" and order.status not in PAID:
                    found.append(
                        Mismatch(
                            "aggregator_validated_not_paid",
                            order_id,
                            order.psp,
                            order.psp_tx_id,
                            order.status,
                            status,
                        )
                    )
    return found


def reconcile(
    *, since: datetime, check_aggregator: bool = True, client: AggregatorClient | None = None
) -> list[Mismatch]:
    """Every mismatch found since ``since`` (empty when the books agree)."""
    mismatches: list[Mismatch] = []
    # Every transfer since ``since``, rejected ones included (the PSP must not have those), and every
    # transfer whose outcome is still open, however old.
    transfers = (
        Transfer.objects.filter(Q(created_at__gte=since) | Q(status__in=OPEN_TRANSFER_STATES))
        .select_related("order")
        .order_by("pk")
    )
    for transfer in transfers:
        mismatches.extend(_check_transfer(transfer))
    mismatches.extend(_check_reported(since))
    if check_aggregator:
        mismatches.extend(_check_aggregator(client or AggregatorClient(AggregatorConfig.from_settings())))
    logger.info("reconcile.done", extra={"mismatches": len(mismatches)})
    return mismatches
