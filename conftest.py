"""Project-wide pytest fixtures."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.db import connection
from django.utils import timezone


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    if not settings.configured or connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (SQLite ignores row locks); runs in make test's PostgreSQL pass"
    )
    for item in items:
        if "postgres" in item.keywords or "chaos" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def api_client() -> object:
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def _runtime_settings_read_afresh() -> None:
    """The runtime settings row is cached per process for a few seconds: each test reads its own."""
    from provision import runtime

    runtime.forget()
