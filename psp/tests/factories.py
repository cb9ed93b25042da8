from __future__ import annotations

from decimal import Decimal

import factory

from orders.tests.factories import OrderFactory
from psp.models import Transfer, TransferStatus


class TransferFactory(factory.django.DjangoModelFactory[Transfer]):
    class Meta:
        model = Transfer

    order = factory.SubFactory(OrderFactory)
    psp = "sandbox"
    attempt = 1
    reference = factory.Sequence(lambda n: f"pn-test-{n}")
    status = TransferStatus.SUCCEEDED
    amount = factory.LazyAttribute(lambda t: t.order.amount)
    currency = factory.LazyAttribute(lambda t: t.order.currency)
    fee = Decimal("10")
    account_masked = "******6789"
