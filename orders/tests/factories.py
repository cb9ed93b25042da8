from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from orders.models import Flavour, Order
from orders.services import Offer


class OrderFactory(factory.django.DjangoModelFactory[Order]):
    class Meta:
        model = Order

    order_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    flavour = Flavour.NEW_ORDER
    amount = Decimal("3750")
    currency = "NGN"
    institution = "ABNGNGLA"
    account_identifier = "0123456789"
    account_name = "Adébáyọ̀ Ọlá"
    memo = "Payment <invoice #42> & co"
    accept_deadline = factory.LazyFunction(lambda: timezone.now() + timedelta(seconds=30))


def new_order_offer(order_id: str = "5f8a3c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b") -> Offer:
    """What POST /new_order hands to ``order_receive``: 3,750 NGN to ABNGNGLA, 30 s to accept."""
    return Offer(
        order_id=order_id,
        flavour=Flavour.NEW_ORDER,
        amount=Decimal("3750"),
        currency="NGN",
        institution="ABNGNGLA",
        accept_deadline=timezone.now() + timedelta(seconds=30),
    )
