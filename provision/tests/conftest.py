"""Fixtures the provision tests borrow from the order tests (the aggregator fake, a funded balance)."""

from orders.tests.conftest import aggregator, funded

__all__ = ["aggregator", "funded"]
