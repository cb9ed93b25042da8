"""Taking an offered order in: stored once, due at once for the lane to decide and accept."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.models import Flavour, Order
from orders.services.common import OrderTermsConflict
from provision import db, request_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Offer:
    """An order offered by the aggregator, in either flavour, normalised."""

    order_id: str
    flavour: str
    amount: Decimal
    currency: str
    institution: str
    accept_deadline: datetime
    exclude_psps: list[str] = field(default_factory=list)
    reference: str = ""
    token: str = ""
    token_amount: str = ""
    network: str = ""
    account_identifier: str = ""
    account_name: str = ""
    memo: str = ""


def order_receive(*, offer: Offer) -> tuple[Order, bool]:
    """Store an offered order once, due at once for the lane (``accept_due_at``); return (order, created).

    The same order id again returns the stored order (no second row, no second accept or payout).
    Raises OrderTermsConflict when the same id comes with different amount, currency or institution.
    """
    try:
        with db.writer_turn(), transaction.atomic():  # the aggregator waits on this write: no SQLite polling
            order = Order.objects.create(
                order_id=offer.order_id,
                flavour=offer.flavour,
                amount=offer.amount,
                currency=offer.currency,
                institution=offer.institution,
                exclude_psps=offer.exclude_psps,
                reference=offer.reference,
                token=offer.token,
                token_amount=offer.token_amount,
                network=offer.network,
                account_identifier=offer.account_identifier,
                account_name=offer.account_name,
                memo=offer.memo,
                accept_deadline=offer.accept_deadline,
                request_id=request_context.bound_request_id(),
                accept_due_at=timezone.now(),
            )
    except IntegrityError:
        existing = Order.objects.filter(order_id=offer.order_id).first()
        if existing is None:
            raise
        if existing.terms() != (offer.amount, offer.currency, offer.institution):
            raise OrderTermsConflict(
                "An order with this id exists with different terms",
                errors={"orderId": ["Already received with a different amount, currency or institution."]},
            ) from None
        logger.info("order.offer_repeated", extra={"order_id": offer.order_id, "status": existing.status})
        return existing, False
    logger.info("order.received", extra={"order_id": order.order_id, "flavour": order.flavour})
    return order, True


def offer_from_seed(data: dict[str, Any]) -> Offer:
    """Normalise a validated seed-flavour body (POST /orders)."""
    recipient = data["recipient"]
    return Offer(
        order_id=data["orderId"],
        flavour=Flavour.SEED,
        amount=data["amount"],
        currency=data["currency"],
        institution=recipient["institution"],
        accept_deadline=data["expiresAt"],
        reference=data.get("reference", ""),
        token=data.get("token", ""),
        token_amount=str(data.get("tokenAmount", "")),
        network=data.get("network", ""),
        account_identifier=recipient["accountIdentifier"],
        account_name=recipient.get("accountName", ""),
        memo=recipient.get("memo", ""),
    )
