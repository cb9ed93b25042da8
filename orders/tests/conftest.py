from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from balances import services as balance_services
from provision import canonical_json, signing

SECRET = "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw="


class AggregatorFake:
    """A real local HTTP server in the aggregator's place; verifies every signature it receives."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def verify(self, request: Request) -> dict[str, Any]:
        _client_id, _, signature = request.headers["Authorization"].removeprefix("HMAC ").partition(":")
        if request.method == "GET":
            params = {k: request.args.getlist(k) for k in request.args}
            payload = canonical_json.query_payload(params, None)
        else:
            payload = canonical_json.normalize_timestamp(canonical_json.go_loads(request.get_data()))
            assert request.get_data() == canonical_json.go_dumps(payload), "body must be sent canonical"
        assert signing.sign(SECRET, canonical_json.go_dumps(payload)) == signature, "bad signature"
        assert isinstance(payload["timestamp"], float | int)
        self.calls.append((request.path, payload))
        return payload

    def on(
        self, path: str, status: int, data: Any = None, *, method: str = "POST", times: int | None = None
    ) -> None:
        def handler(request: Request) -> Response:
            self.verify(request)
            body = {"status": "success" if status < 400 else "error", "message": "ok", "data": data}
            return Response(json.dumps(body), status=status, content_type="application/json")

        if times is None:
            self.server.expect_request(path, method=method).respond_with_handler(handler)
        else:
            for _ in range(times):
                self.server.expect_ordered_request(path, method=method).respond_with_handler(handler)

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]


@pytest.fixture
def aggregator(httpserver: HTTPServer, settings: Any) -> AggregatorFake:
    settings.AGGREGATOR_BASE_URL = httpserver.url_for("").rstrip("/")
    settings.AGGREGATOR_READ_TIMEOUT = Decimal("1")
    return AggregatorFake(httpserver)


@pytest.fixture
def funded(db: None) -> None:
    balance_services.balance_credit(currency="NGN", amount=Decimal("100000"), reason="test funds")


def accept_data(order_id: str, amount: str = "3750") -> dict[str, Any]:
    return {
        "id": order_id,
        "amount": amount,
        "institution": "ABNGNGLA",
        "accountIdentifier": "0123456789",
        "accountName": "Adébáyọ̀ Ọlá",
        "memo": "Payment <invoice #42> & co",
        "metadata": None,
    }


@pytest.fixture
def canonical_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every call of the Go-canonical decoder and encoder, wherever it is imported."""
    calls: list[str] = []

    def recording(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        return wrapper

    for name in ("go_loads", "go_dumps"):
        wrapped = recording(name, getattr(canonical_json, name))
        monkeypatch.setattr(canonical_json, name, wrapped)
        monkeypatch.setattr(signing, name, wrapped)
    return calls
