from __future__ import annotations

from django.db import models

from balances.models import money_field


class FloorRow(models.Model):
    """One row per floor request: ten validated fields, as many as an order offer carries."""

    order_id = models.CharField(max_length=64)
    amount = money_field()
    currency = models.CharField(max_length=7)
    institution = models.CharField(max_length=32)
    account_identifier = models.CharField(max_length=64)
    account_name = models.CharField(max_length=255)
    memo = models.CharField(max_length=512, blank=True)
    token = models.CharField(max_length=32)
    network = models.CharField(max_length=64)
    reference = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    # Explicit: the type checker runs with the test settings, where the bench app is not installed.
    objects: models.Manager[FloorRow] = models.Manager()

    def __str__(self) -> str:
        return self.order_id
