from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from orders.models import Flavour, Order


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
