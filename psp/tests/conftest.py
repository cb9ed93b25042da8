"""Fixtures of the PSP tests: fake PSP servers (real local HTTP servers) wired into settings."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from psp import registry
from psp.tests.helpers import LENCO_ACCOUNT_ID, LENCO_API_KEY


@pytest.fixture
def lenco_fake(settings: Any, httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """Lenco at a pytest-httpserver (``/v1`` and ``/v2``), with a short read timeout."""
    settings.LENCO_API_KEY = LENCO_API_KEY
    settings.LENCO_ACCOUNT_ID = LENCO_ACCOUNT_ID
    settings.LENCO_BASE_URL = httpserver.url_for("/v1").rstrip("/")
    settings.LENCO_V2_BASE_URL = httpserver.url_for("/v2").rstrip("/")
    settings.LENCO_TIMEOUT_SECONDS = Decimal("0.3")
    registry.adapter.cache_clear()
    yield httpserver
    registry.adapter.cache_clear()


@pytest.fixture
def lenco_then_sandbox(settings: Any, lenco_fake: HTTPServer) -> HTTPServer:
    settings.PSP = ["lenco", "sandbox"]
    return lenco_fake
