"""The conformance suite's fixtures: one threaded local HTTP server, and each fake wired into the node."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from psp import registry
from psp.models import InstitutionMapping
from psp.tests.conformance.kit import PspFake


class KitServer(HTTPServer):
    """pytest-httpserver's server, threaded (a fake that sleeps past the client's timeout does not hold up
    the look-up that follows), that knows when no request is in flight (its log is complete)."""

    def __init__(self) -> None:
        super().__init__(host="127.0.0.1", port=0, threaded=True)
        self.in_flight = 0
        self.idle = threading.Condition()

    def application(self, request: Request) -> Response:
        with self.idle:
            self.in_flight += 1
        try:
            return super().application(request)
        finally:
            with self.idle:
                self.in_flight -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every request has been answered and logged (a late answer is answered seconds later)."""
        deadline = time.monotonic() + timeout
        with self.idle:
            while self.in_flight:
                left = deadline - time.monotonic()
                assert left > 0, "a fake's handler is still running"
                self.idle.wait(left)


@pytest.fixture(scope="session")
def kit_server() -> Iterator[KitServer]:
    server = KitServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(request: pytest.FixtureRequest, settings: Any, kit_server: KitServer, db: None) -> Iterator[PspFake]:
    """The fake of one adapter, installed on the kit's server, and the node pointed at it: only this PSP
    enabled, its currency taken, its institution mapped; the sandbox set up to be the second PSP of
    failover tests (``settings.PSP = [fake.name, "sandbox"]``). Parametrized over ``FAKES`` by the suite."""
    fake_class: type[PspFake] = request.param
    kit_server.clear()
    kit_server.clear_all_handlers()
    fake = fake_class(kit_server)
    settings.PSP = [fake.name]
    settings.CURRENCIES = sorted({*settings.CURRENCIES, fake.currency})
    settings.PAYOUT_NAME_CHECK = "off"
    settings.SANDBOX_BALANCES = {fake.currency: Decimal("1000000000")}
    settings.SANDBOX_LATENCY_SECONDS = 0
    settings.SANDBOX_FAILURE_RATE = Decimal("0")
    settings.SANDBOX_WEBHOOK_URL = ""
    for name, value in fake.node_settings().items():
        setattr(settings, name, value)
    fake.install()
    for institution, psp_code in fake.institution_mappings():
        InstitutionMapping.objects.update_or_create(
            psp=fake.name,
            institution=institution,
            defaults={"currency": fake.currency, "psp_code": psp_code, "enabled": True},
        )
    registry.adapter.cache_clear()
    yield fake
    registry.adapter.cache_clear()
    kit_server.wait_idle()
    kit_server.check_handler_errors()  # a fake that crashed
    kit_server.check_assertions()  # a call the fake does not serve: the adapter called a path it lacks
