"""Fixtures of the PSP tests: fake PSP servers (real local HTTP servers) wired into settings."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from psp import registry
from psp.tests.conformance.fakes.mpesa import MpesaFake
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


@pytest.fixture
def mpesa_fake(settings: Any) -> Iterator[MpesaFake]:
    """M-Pesa Daraja at its own threaded local HTTP server (the conformance kit's fake), the only enabled
    PSP. Threaded: a slow answer (a scripted timeout) does not hold up the calls that follow it."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = MpesaFake(server)
    for name, value in fake.node_settings().items():
        setattr(settings, name, value)
    settings.PSP = ["mpesa"]
    fake.install()
    registry.adapter.cache_clear()
    try:
        yield fake
        server.check_handler_errors()
    finally:
        registry.adapter.cache_clear()
        server.clear()
        server.stop()
