"""Expire offers past their window and cancel held payouts past their approval timeout."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orders import services


class Command(BaseCommand):
    help = "Expire received orders past their accept window; cancel held payouts not approved in time."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"expired or timed out: {services.order_expire_due()}")
