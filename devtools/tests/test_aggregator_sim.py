"""The aggregator simulator on its own: its provider API against ``requests``, its node calls against a stub.

No Django and no database: run with ``pytest -p no:django devtools/tests``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from devtools.aggregator_sim import DEFAULT_ACCOUNT_NAME, AggregatorSimulator
from provision import canonical_json, signing

CLIENT_ID = "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b"
SECRET = "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw="
EXPECTED = "Expected: HMAC <public_key>:<signature>"


# ------------------------------------------------------------------------------------------ helpers


def auth_headers(signature: str, client_id: str = CLIENT_ID) -> dict[str, str]:
    return {"Authorization": f"HMAC {client_id}:{signature}", "Content-Type": "application/json"}


def post(
    sim: AggregatorSimulator,
    path: str,
    payload: dict[str, Any] | None = None,
    *,
    timestamp: int | None = None,
    timeout: float = 5.0,
) -> requests.Response:
    """A correctly signed node → aggregator POST (fresh integer timestamp, canonical bytes)."""
    body, signature = signing.signed_body(SECRET, payload or {}, timestamp=timestamp or int(time.time()))
    return requests.post(sim.provider_url + path, data=body, headers=auth_headers(signature), timeout=timeout)


def post_raw(sim: AggregatorSimulator, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(sim.provider_url + path, data=body, headers=headers, timeout=5)


def get(sim: AggregatorSimulator, path: str, params: dict[str, str]) -> requests.Response:
    """A signed GET: the query parameters as strings plus the numeric timestamp (A4.1, C.3)."""
    timestamp = int(time.time())
    signed = canonical_json.go_dumps(canonical_json.query_payload(params, timestamp))
    signature = signing.sign(SECRET, signed)
    query = {**params, "timestamp": str(timestamp)}
    return requests.get(sim.provider_url + path, params=query, headers=auth_headers(signature), timeout=5)


def accept(sim: AggregatorSimulator, order_id: str, **kwargs: Any) -> requests.Response:
    return post(sim, f"/orders/{order_id}/accept", **kwargs)


def fulfil(sim: AggregatorSimulator, order_id: str, **payload: Any) -> requests.Response:
    return post(sim, f"/orders/{order_id}/fulfill", payload)


class StubNode:
    """A tiny node: records every request and answers with ``self.responder(path, body)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.responder: Callable[[str, bytes], tuple[int, bytes]] = self.default_answer
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stub.lock:
                    stub.calls.append((self.path, dict(self.headers.items()), body))
                status, answer = stub.responder(self.path, body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @staticmethod
    def default_answer(path: str, body: bytes) -> tuple[int, bytes]:
        order_id = json.loads(body).get("orderId", "")
        return 200, json.dumps(
            {"status": "success", "message": "Order received", "data": {"orderId": order_id}}
        ).encode()

    def tx_status_answer(self, data: Any, status: int = 200) -> None:
        def answer(path: str, body: bytes) -> tuple[int, bytes]:
            if path == "/tx_status":
                return status, json.dumps(
                    {"status": "success", "message": "Transaction status", "data": data}
                ).encode()
            return self.default_answer(path, body)

        self.responder = answer

    def calls_to(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        with self.lock:
            return [c for c in self.calls if c[0] == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sim() -> Iterator[AggregatorSimulator]:
    with AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET, currencies=("NGN", "KES")) as simulator:
        yield simulator


@pytest.fixture
def node() -> Iterator[StubNode]:
    stub = StubNode()
    yield stub
    stub.stop()


@pytest.fixture
def sim_node(node: StubNode) -> Iterator[AggregatorSimulator]:
    with AggregatorSimulator(
        client_id=CLIENT_ID, secret=SECRET, node_url=node.url, tx_status_after=0, fulfilment_validity=0
    ) as simulator:
        yield simulator


def accepted_order(sim: AggregatorSimulator, **offer: Any) -> str:
    order_id = sim.offer(notify=False, **offer).id
    assert accept(sim, order_id).status_code == 201
    return order_id


# ------------------------------------------------------------------------------- basics and HMAC


def test_health_and_unknown_routes_need_no_auth(sim: AggregatorSimulator) -> None:
    assert requests.get(sim.base_url + "/health", timeout=5).json() == {"live": "ok"}
    for method, path in (("GET", "/v1/provider/nope"), ("GET", f"/v1/provider/orders/{uuid.uuid4()}/accept")):
        response = requests.request(method, sim.base_url + path, timeout=5)
        assert response.status_code == 404
        assert response.json() == {"status": "error", "message": "Route Not Found", "data": None}


def _now() -> int:
    return int(time.time())


def _signed(payload: dict[str, Any], client_id: str = CLIENT_ID) -> tuple[bytes, dict[str, str]]:
    body = canonical_json.go_dumps(payload)
    return body, auth_headers(signing.sign(SECRET, body), client_id)


HMAC_REFUSALS: list[tuple[str, Callable[[], tuple[bytes, dict[str, str]]], int, str, Any]] = [
    # A missing header wins over a broken body.
    ("missing header", lambda: (b"not json", {}), 401, "Missing Authorization header", None),
    (
        "wrong scheme",
        lambda: (b"not json", {"Authorization": "Bearer abc:def"}),
        401,
        "Invalid Authorization header",
        EXPECTED,
    ),
    (
        "no space",
        lambda: (b"not json", {"Authorization": "HMAC"}),
        401,
        "Invalid Authorization header",
        EXPECTED,
    ),
    (
        "no colon",
        lambda: (b"not json", {"Authorization": "HMAC abcdef"}),
        401,
        "Invalid Authorization header format",
        EXPECTED,
    ),
    (
        "too short",
        lambda: (b"not json", {"Authorization": "HMAC a:b"}),
        401,
        "Invalid Authorization header format",
        EXPECTED,
    ),
    (
        "empty signature",
        lambda: (b"not json", {"Authorization": "HMAC abcd:"}),
        401,
        "Invalid Authorization header format",
        EXPECTED,
    ),
    (
        "empty id",
        lambda: (b"not json", {"Authorization": "HMAC :abcd"}),
        401,
        "Invalid Authorization header format",
        EXPECTED,
    ),
    # The body is checked before the timestamp, and with Go's error text.
    (
        "array body",
        lambda: (b"[1]", {"Authorization": "HMAC id:sig"}),
        400,
        "Invalid payload format",
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    ),
    (
        "truncated body",
        lambda: (b'{"a":1', {"Authorization": "HMAC id:sig"}),
        400,
        "Invalid payload format",
        "unexpected end of JSON input",
    ),
    (
        "no timestamp",
        lambda: (b"{}", {"Authorization": "HMAC id:sig"}),
        401,
        "Missing or invalid timestamp in payload",
        None,
    ),
    (
        "text timestamp",
        lambda: (b'{"timestamp":"soon"}', {"Authorization": "HMAC id:sig"}),
        401,
        "Missing or invalid timestamp in payload",
        None,
    ),
    (
        "zero timestamp",
        lambda: (b'{"timestamp":0}', {"Authorization": "HMAC id:sig"}),
        401,
        "Missing or invalid timestamp in payload",
        None,
    ),
    # The age is checked before the key id (bogus id here).
    (
        "old timestamp",
        lambda: _signed({"timestamp": _now() - 301}, "not-a-uuid"),
        401,
        "Invalid timestamp",
        None,
    ),
    (
        "bad key id",
        lambda: (_signed({"timestamp": _now()})[0], auth_headers("00", "not-a-uuid")),
        400,
        "Invalid API key ID",
        None,
    ),
    (
        "unknown key",
        lambda: (_signed({"timestamp": _now()})[0], auth_headers("00", str(uuid.uuid4()))),
        404,
        "API key not found",
        None,
    ),
    (
        "bad signature",
        lambda: (_signed({"timestamp": _now()})[0], auth_headers("00" * 32)),
        401,
        "Invalid HMAC signature",
        None,
    ),
    # Signed over the canonical form with the timestamp as a string: the middleware signs a number.
    (
        "string timestamp signed as text",
        lambda: (
            b'{"timestamp":"%d"}' % _now(),
            auth_headers(signing.sign(SECRET, b'{"timestamp":"%d"}' % _now())),
        ),
        401,
        "Invalid HMAC signature",
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "status", "message", "data"), HMAC_REFUSALS, ids=[c[0] for c in HMAC_REFUSALS]
)
def test_hmac_middleware_refuses_in_the_fork_order(
    sim: AggregatorSimulator,
    case: str,
    make: Callable[[], tuple[bytes, dict[str, str]]],
    status: int,
    message: str,
    data: Any,
) -> None:
    body, headers = make()
    response = post_raw(sim, f"/orders/{uuid.uuid4()}/accept", body, headers)

    assert response.status_code == status
    assert response.json() == {"status": "error", "message": message, "data": data}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_hmac_accepts_string_and_future_timestamps_and_non_canonical_bodies(sim: AggregatorSimulator) -> None:
    unknown = f"/orders/{uuid.uuid4()}/accept"
    now = _now()
    # A string timestamp is turned into a number before verifying: sign the numeric form.
    body = b'{"timestamp":"%d"}' % now
    signature = signing.sign(SECRET, b'{"timestamp":%d}' % now)
    assert post_raw(sim, unknown, body, auth_headers(signature)).status_code == 404  # auth passed
    # A future timestamp passes (only the past is bounded).
    assert accept(sim, str(uuid.uuid4()), timestamp=now + 3600).status_code == 404
    # A pretty-printed body verifies against its Go re-marshal.
    pretty = json.dumps({"timestamp": now, "reason": "Ünïcode <&>"}, indent=2).encode()
    canonical = canonical_json.canonicalize(pretty)
    assert post_raw(sim, unknown, pretty, auth_headers(signing.sign(SECRET, canonical))).status_code == 404
    # The key id may use Go's other UUID spellings.
    body, headers = _signed({"timestamp": now}, "{" + CLIENT_ID.upper() + "}")
    assert post_raw(sim, unknown, body, headers).status_code == 404


# ------------------------------------------------------------------------------ accept / decline


def test_accept_answers_201_with_the_recipient_then_404(sim: AggregatorSimulator) -> None:
    offered = sim.offer(
        "3750", notify=False, account_identifier="0123456789", memo="Payment <invoice #42> & co"
    )

    first = accept(sim, offered.id)

    assert first.status_code == 201
    assert first.json() == {
        "status": "success",
        "message": "Order request accepted successfully",
        "data": {
            "id": offered.id,
            "amount": "3750",
            "institution": "ABNGNGLA",
            "accountIdentifier": "0123456789",
            "accountName": "Adébáyọ̀ Ọlá",
            "memo": "Payment <invoice #42> & co",
            "metadata": None,
        },
    }
    assert list(first.json()["data"]) == [
        "id",
        "amount",
        "institution",
        "accountIdentifier",
        "accountName",
        "memo",
        "metadata",
    ]
    # Written the Go way: HTML characters escaped, other non-ASCII raw UTF-8.
    assert b"Payment \\u003cinvoice #42\\u003e \\u0026 co" in first.content
    assert DEFAULT_ACCOUNT_NAME.encode() in first.content

    second = accept(sim, offered.id)

    assert second.status_code == 404
    assert second.json()["message"] == "Order request not found or is expired"
    state = sim.order(offered.id)
    assert (state.state, state.accept_count, state.accept_attempts) == ("accepted", 1, 2)
    assert state.aggregator_status == "processing"


def test_accept_bad_id_unknown_id_and_expiry(sim: AggregatorSimulator) -> None:
    assert accept(sim, "not-a-uuid").json()["message"] == "Invalid Order ID"
    assert accept(sim, "not-a-uuid").status_code == 400
    assert accept(sim, str(uuid.uuid4())).status_code == 404

    offered = sim.offer(notify=False, validity_seconds=0.2)
    time.sleep(0.3)

    response = accept(sim, offered.id)
    assert response.status_code == 404
    assert response.json()["message"] == "Order request not found or is expired"
    assert sim.order(offered.id).state == "expired"
    assert sim.order(offered.id).terminal


def test_validity_setting_and_expire_helper(sim: AggregatorSimulator) -> None:
    sim.validity_seconds = 0.1
    late = sim.offer(notify=False)
    sim.validity_seconds = 30
    forced = sim.offer(notify=False)
    sim.expire(forced.id)
    time.sleep(0.15)

    assert accept(sim, late.id).status_code == 404
    assert accept(sim, forced.id).status_code == 404


def test_unsettled_lists_the_orders_not_yet_final_and_sees_expiry(sim: AggregatorSimulator) -> None:
    open_ = sim.offer(notify=False)
    expiring = sim.offer(notify=False, validity_seconds=0.05)
    declined = sim.offer(notify=False)
    post(sim, f"/orders/{declined.id}/decline", {"reason": "Insufficient balance"})
    time.sleep(0.1)

    assert sim.unsettled([open_.id, expiring.id, declined.id]) == {open_.id}
    assert sim.order(expiring.id).state == "expired"


def test_decline_then_accept_and_decline_are_404(sim: AggregatorSimulator) -> None:
    offered = sim.offer(notify=False)

    declined = post(sim, f"/orders/{offered.id}/decline", {"reason": "Insufficient balance"})

    assert declined.status_code == 200
    assert declined.json() == {
        "status": "success",
        "message": "Order request declined successfully",
        "data": None,
    }
    assert accept(sim, offered.id).status_code == 404
    assert post(sim, f"/orders/{offered.id}/decline", {}).status_code == 404
    assert post(sim, "/orders/nope/decline", {}).status_code == 400
    assert sim.order(offered.id).state == "declined"


# ------------------------------------------------------------------------------------- fulfil


def test_fulfil_validation_and_types(sim: AggregatorSimulator) -> None:
    order_id = accepted_order(sim)

    missing = fulfil(sim, order_id, validationStatus="pending")
    assert missing.status_code == 400
    assert missing.json() == {
        "status": "error",
        "message": "Failed to validate payload",
        "data": [
            {"field": "PSP", "message": "This field is required"},
            {"field": "TxID", "message": "This field is required"},
        ],
    }
    only_tx = fulfil(sim, order_id, psp="", txId="T1")
    assert only_tx.json()["data"] == [{"field": "PSP", "message": "This field is required"}]

    wrong_type = fulfil(sim, order_id, psp="lenco", txId=12345)
    assert (wrong_type.status_code, wrong_type.content) == (500, b"")

    # The order id is checked after the body.
    assert fulfil(sim, "bad-id", psp="lenco", txId="T1").json()["message"] == "Invalid Order ID"
    assert fulfil(sim, "bad-id").json()["message"] == "Failed to validate payload"
    assert sim.order(order_id).fulfilments == []


def test_fulfil_success_with_a_new_txid_crashes_then_the_retry_validates(sim: AggregatorSimulator) -> None:
    order_id = accepted_order(sim)

    crashed = fulfil(sim, order_id, psp="lenco", txId="TX-1", validationStatus="success")

    assert (crashed.status_code, crashed.content) == (500, b"")
    state = sim.order(order_id)
    assert state.state == "accepted"
    assert [(f.tx_id, f.validation_status) for f in state.fulfilments] == [("TX-1", "pending")]

    retried = fulfil(sim, order_id, psp="lenco", txId="TX-1", validationStatus="success")

    assert retried.status_code == 200
    assert retried.json() == {"status": "success", "message": "Order fulfilled successfully", "data": None}
    again = fulfil(sim, order_id, psp="lenco", txId="TX-1", validationStatus="success")
    assert again.json()["message"] == "Order already validated"
    state = sim.order(order_id)
    assert state.state == "validated"
    assert state.success_fulfils == 3
    assert [(f.tx_id, f.validation_status) for f in state.fulfilments] == [("TX-1", "success")]
    assert state.offer_to_fulfilled_ms is not None
    assert sim.violations() == []


def test_fulfil_pending_then_success(sim: AggregatorSimulator) -> None:
    order_id = accepted_order(sim)

    assert fulfil(sim, order_id, psp="lenco", txId="TX-2", validationStatus="pending").status_code == 200
    assert sim.order(order_id).state == "fulfilled"
    assert fulfil(sim, order_id, psp="lenco", txId="TX-2").status_code == 200  # empty status = pending
    assert fulfil(sim, order_id, psp="lenco", txId="TX-2", validationStatus="success").status_code == 200

    state = sim.order(order_id)
    assert state.state == "validated"
    assert state.success_fulfils == 1
    assert state.tx_ids == ["TX-2"]


def test_fulfil_failed_with_a_new_txid_commits_then_crashes(sim: AggregatorSimulator) -> None:
    order_id = accepted_order(sim)

    crashed = fulfil(
        sim, order_id, psp="lenco", txId="TX-3", validationStatus="failed", validationError="Bad bank"
    )

    assert (crashed.status_code, crashed.content) == (500, b"")
    state = sim.order(order_id)
    assert state.state == "fulfilled"
    assert (state.fulfilments[0].validation_status, state.fulfilments[0].validation_error) == (
        "failed",
        "Bad bank",
    )
    assert fulfil(sim, order_id, psp="lenco", txId="TX-3", validationStatus="failed").status_code == 200
    assert sim.order(order_id).outcome == "failed"


def test_a_second_txid_for_one_order_is_flagged(sim: AggregatorSimulator) -> None:
    order_id = accepted_order(sim)
    fulfil(sim, order_id, psp="lenco", txId="A", validationStatus="pending")
    fulfil(sim, order_id, psp="lenco", txId="B", validationStatus="pending")

    assert [v.kind for v in sim.violations()] == ["multiple_txids"]


# --------------------------------------------------------------------------------------- cancel


def test_cancel(sim: AggregatorSimulator) -> None:
    order_id = accepted_order(sim)
    never_accepted = sim.offer(notify=False).id

    missing = post(sim, f"/orders/{order_id}/cancel", {})
    assert missing.status_code == 400
    assert missing.json()["data"] == [{"field": "Reason", "message": "This field is required"}]
    assert post(sim, f"/orders/{order_id}/cancel", {"reason": 7}).status_code == 500
    assert post(sim, "/orders/x/cancel", {"reason": "PSP timeout"}).json()["message"] == "Invalid Order ID"
    not_ours = post(sim, f"/orders/{never_accepted}/cancel", {"reason": "PSP timeout"})
    assert (not_ours.status_code, not_ours.json()["message"]) == (404, "Could not find payment order")

    cancelled = post(sim, f"/orders/{order_id}/cancel", {"reason": "PSP timeout"})

    assert cancelled.json() == {"status": "success", "message": "Order cancelled successfully", "data": None}
    state = sim.order(order_id)
    assert (state.state, state.cancel_reasons, state.outcome) == ("cancelled", ["PSP timeout"], "cancelled")
    assert sim.violations() == []


def test_cancel_after_payment_is_flagged(sim: AggregatorSimulator) -> None:
    order_id = accepted_order(sim)
    fulfil(sim, order_id, psp="lenco", txId="P", validationStatus="pending")
    fulfil(sim, order_id, psp="lenco", txId="P", validationStatus="success")

    assert post(sim, f"/orders/{order_id}/cancel", {"reason": "oops"}).status_code == 200
    assert [v.kind for v in sim.violations()] == ["cancel_after_payment"]


# ------------------------------------------------------------------------------------- balances


def test_balances_validation(sim: AggregatorSimulator) -> None:
    good = {
        "currency": "NGN",
        "availableBalance": "50000.00",
        "totalBalance": "100000",
        "reservedBalance": "0",
    }

    assert post(sim, "/balances", good).json() == {
        "status": "success",
        "message": "Balance updated successfully",
        "data": None,
    }
    assert sim.balances() == {
        "NGN": {"availableBalance": "50000.00", "totalBalance": "100000", "reservedBalance": "0"}
    }

    numbers = post(sim, "/balances", {**good, "availableBalance": 50000})
    assert (numbers.status_code, numbers.content) == (500, b"")

    bad = post(sim, "/balances", {"currency": "NG", "availableBalance": "1e5", "totalBalance": ".5"})
    assert bad.status_code == 400
    assert bad.json()["data"] == [
        {"field": "Currency", "message": "Should be at least 3 characters"},
        {"field": "AvailableBalance", "message": "Unknown error"},
        {"field": "TotalBalance", "message": "Unknown error"},
        {"field": "ReservedBalance", "message": "This field is required"},
    ]
    assert post(sim, "/balances", {**good, "currency": "NAIRAXYZ"}).json()["data"] == [
        {"field": "Currency", "message": "Should be at most 7 characters"}
    ]
    assert post(sim, "/balances", {**good, "totalBalance": "100\n"}).status_code == 400

    unknown = post(sim, "/balances", {**good, "currency": "GHS"})
    assert (unknown.status_code, unknown.json()["message"]) == (500, "Failed to update balance")

    seed_body = post(sim, "/balances", {"balances": [{"currency": "NGN", "available": 1}]})
    assert seed_body.status_code == 400


# ------------------------------------------------------------------------------------ GET orders


def test_get_orders_is_signed_over_the_query(sim: AggregatorSimulator) -> None:
    first = accepted_order(sim, amount="1000", memo="a&b")
    second = accepted_order(sim, amount="2000")
    accepted_order(sim, currency="KES")
    sim.offer(notify=False)  # never accepted: not listed
    fulfil(sim, second, psp="lenco", txId="S", validationStatus="pending")

    listed = get(sim, "/orders", {"currency": "NGN"})

    assert listed.status_code == 200
    body = listed.json()
    assert body["message"] == "Orders successfully retrieved"
    assert (body["data"]["total"], body["data"]["page"], body["data"]["pageSize"]) == (2, 1, 10)
    assert [o["id"] for o in body["data"]["orders"]] == [second, first]  # newest first
    view = body["data"]["orders"][1]
    assert set(view) == {
        "id", "token", "gatewayId", "amount", "amountInUSD", "rate", "blockNumber", "txHash", "institution",
        "accountIdentifier", "accountName", "providerId", "memo", "network", "status", "updatedAt",
        "createdAt", "transactionLogs", "cancellationReasons",
    }  # fmt: skip
    assert (view["status"], view["accountName"], view["memo"]) == ("processing", DEFAULT_ACCOUNT_NAME, "a&b")
    assert isinstance(view["amount"], str)
    assert isinstance(view["blockNumber"], int)
    assert view["createdAt"].endswith("Z")

    processing = get(sim, "/orders", {"currency": "NGN", "status": "processing"}).json()["data"]
    assert [o["id"] for o in processing["orders"]] == [first]
    paged = get(sim, "/orders", {"currency": "NGN", "page": "2", "pageSize": "1", "ordering": "asc"}).json()[
        "data"
    ]
    assert [o["id"] for o in paged["orders"]] == [second]
    empty = get(sim, "/orders", {"currency": "NGN", "status": "validated"}).json()["data"]
    assert (empty["total"], empty["orders"]) == (0, None)

    assert get(sim, "/orders", {}).json()["message"] == "Currency is required"
    assert get(sim, "/orders", {"currency": "GHS"}).json()["message"] == "Currency not found"
    # A value that needs percent-encoding is signed decoded.
    assert get(sim, "/orders", {"currency": "NGN", "search": "a&b c"}).status_code == 200


def test_get_orders_signature_covers_the_parameters(sim: AggregatorSimulator) -> None:
    timestamp = int(time.time())
    signature = signing.sign(
        SECRET, canonical_json.go_dumps(canonical_json.query_payload({"currency": "NGN"}, timestamp))
    )
    tampered = requests.get(
        sim.provider_url + "/orders",
        params={"currency": "KES", "timestamp": str(timestamp)},
        headers=auth_headers(signature),
        timeout=5,
    )
    no_timestamp = requests.get(
        sim.provider_url + "/orders", params={"currency": "NGN"}, headers=auth_headers(signature), timeout=5
    )

    assert (tampered.status_code, tampered.json()["message"]) == (401, "Invalid HMAC signature")
    assert (no_timestamp.status_code, no_timestamp.json()["message"]) == (
        401,
        "Missing or invalid timestamp in payload",
    )


# ------------------------------------------------------------------------------- fault injection


def test_fail_next_status_then_normal(sim: AggregatorSimulator) -> None:
    order_id = sim.offer(notify=False).id
    sim.fail_next(2, status=500)
    sim.fail_next(1, status=429, path="/balances")

    assert (accept(sim, order_id).status_code, accept(sim, order_id).content) == (500, b"")
    throttled = post(sim, "/balances", {})
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert accept(sim, order_id).status_code == 201  # the failed attempts changed nothing
    assert sim.pending_faults() == 0
    assert [e.fault for e in sim.events(path="/accept")] == ["status", "status", None]


def test_fail_next_reset_and_timeout(sim: AggregatorSimulator) -> None:
    order_id = sim.offer(notify=False).id
    sim.fail_next(1, status="reset")
    with pytest.raises(requests.ConnectionError):
        accept(sim, order_id)

    sim.fail_next(1, status="timeout", hold_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        accept(sim, order_id, timeout=0.3)
    assert time.monotonic() - started < 1.0

    assert accept(sim, order_id).status_code == 201
    events = sim.wait_for_event(path="/accept", count=3, timeout=3)
    assert [(e.status, e.fault) for e in events] == [(None, "reset"), (None, "timeout"), (201, None)]


@pytest.mark.parametrize("mode", [500, "reset"])
def test_lose_next_accept_answer_commits_the_accept(sim: AggregatorSimulator, mode: int | str) -> None:
    order_id = sim.offer(notify=False).id
    sim.lose_next_accept_answer(mode)

    if mode == "reset":
        with pytest.raises(requests.ConnectionError):
            accept(sim, order_id)
    else:
        lost = accept(sim, order_id)
        assert (lost.status_code, lost.content) == (500, b"")

    assert accept(sim, order_id).status_code == 404  # fork: the retry finds the request consumed
    listed = get(sim, "/orders", {"currency": "NGN", "status": "processing"}).json()["data"]["orders"]
    assert [o["id"] for o in listed] == [order_id]  # the reconciliation path (A6) finds it
    assert sim.order(order_id).accept_count == 1


def test_refuse_connections_then_listen_again_on_the_same_port(sim: AggregatorSimulator) -> None:
    port = sim.port
    sim.refuse_connections(0.5)

    assert not sim.listening
    with pytest.raises(requests.ConnectionError):
        requests.get(sim.base_url + "/health", timeout=1)
    assert sim.wait_listening(3)
    assert sim.port == port
    assert requests.get(sim.base_url + "/health", timeout=2).status_code == 200


def test_a_connection_is_kept_alive_between_requests_like_the_go_server(sim: AggregatorSimulator) -> None:
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
    answers = []
    for _ in range(3):
        connection.request("GET", "/health")
        response = connection.getresponse()
        answers.append((response.status, response.getheader("Connection")))
        response.read()
    local_port = connection.sock.getsockname()[1]
    connection.request("GET", "/health")
    connection.getresponse().read()

    assert answers == [(200, None)] * 3
    assert connection.sock.getsockname()[1] == local_port  # the same connection throughout
    connection.close()


def test_refusing_connections_also_ends_the_kept_alive_ones(sim: AggregatorSimulator) -> None:
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
    connection.request("GET", "/health")
    connection.getresponse().read()

    sim.refuse_connections(5)

    def ask_again() -> None:
        connection.request("GET", "/health")
        connection.getresponse()

    with pytest.raises(ConnectionError):  # RemoteDisconnected, a reset or a broken pipe: it ended
        ask_again()
    connection.close()


def test_a_request_read_after_it_stopped_listening_is_not_answered(sim: AggregatorSimulator) -> None:
    """The race the shutdown alone leaves: the next request arrives before the connection's handler is
    back waiting for it (Linux still hands such data over after a read shutdown). Its server is marked
    closing here without the shutdown, as it is just before it."""
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=2)
    connection.request("GET", "/health")
    connection.getresponse().read()
    server = sim._server
    assert server is not None
    server.closing = True

    def ask_again() -> None:
        connection.request("GET", "/health")
        connection.getresponse()

    with pytest.raises(ConnectionError):
        ask_again()
    connection.close()


# ------------------------------------------------------------------------------- calls to the node


def test_offers_reach_the_node_over_a_reused_connection_like_gos_client(sim: AggregatorSimulator) -> None:
    """The aggregator's one http.Client keeps connections to a provider alive across its goroutines; the
    simulator's offers (each sent from its own thread) do the same instead of connecting each time."""
    ports: list[int] = []

    class KeepAliveNode(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ports.append(self.client_address[1])
            answer = json.dumps(
                {
                    "status": "success",
                    "message": "Order received",
                    "data": {"orderId": json.loads(body)["orderId"]},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveNode)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        sim.node_url = f"http://127.0.0.1:{server.server_address[1]}"
        offered = []
        for _ in range(4):  # one at a time, as offers spread over time arrive
            offered.append(sim.offer("5000", block=False).id)
            sim.wait_for(lambda: sim.order(offered[-1]).notify_ok is not None, timeout=5)

        assert all(sim.order(order_id).notify_ok for order_id in offered)
        assert len(ports) == 4
        assert len(set(ports)) == 1  # one connection, kept alive
    finally:
        server.shutdown()
        server.server_close()


def test_new_order_offer_is_written_before_the_node_is_notified(
    node: StubNode, sim_node: AggregatorSimulator
) -> None:
    seen_during_notify: list[int] = []

    def fast_node(path: str, body: bytes) -> tuple[int, bytes]:
        seen_during_notify.append(accept(sim_node, json.loads(body)["orderId"]).status_code)
        return StubNode.default_answer(path, body)

    node.responder = fast_node

    offered = sim_node.offer("3750.5", currency="NGN", institution="ABNGNGLA")

    [(_path, headers, body)] = node.calls_to("/new_order")
    assert body == canonical_json.go_dumps(
        {"amount": "3750", "currency": "NGN", "institution": "ABNGNGLA", "orderId": offered.id}
    )  # half-to-even to 0 decimals, a string
    assert headers["X-Request-Signature"] == signing.sign(SECRET, body)
    assert "Content-Type" not in headers
    assert headers["User-Agent"] == "Go-http-client/1.1"
    assert seen_during_notify == [201]
    state = sim_node.order(offered.id)
    assert (state.notify_ok, state.notify_status, state.state) == (True, 200, "accepted")
    assert state.offer_to_accept_ms is not None


def test_seed_offer_carries_the_full_order_with_hmac_authorization(
    node: StubNode, sim_node: AggregatorSimulator
) -> None:
    offered = sim_node.offer("736.155", flavour="seed", account_identifier="0123456789")

    [(_path, headers, body)] = node.calls_to("/orders")
    scheme, _, credentials = headers["Authorization"].partition(" ")
    client_id, _, signature = credentials.partition(":")
    payload = canonical_json.normalize_timestamp(canonical_json.go_loads(body))
    assert (scheme, client_id) == ("HMAC", CLIENT_ID)
    assert signature == signing.sign(SECRET, canonical_json.go_dumps(payload))
    assert headers["Content-Type"] == "application/json"
    decoded = json.loads(body)
    assert decoded["amount"] == 736.155
    assert isinstance(decoded["timestamp"], int)
    assert isinstance(decoded["tokenAmount"], float)
    assert decoded["recipient"] == {
        "institution": "ABNGNGLA",
        "accountIdentifier": "0123456789",
        "accountName": DEFAULT_ACCOUNT_NAME,
        "memo": offered.memo,
    }
    assert decoded["orderId"] == offered.id
    assert decoded["expiresAt"].endswith("Z")
    assert accept(sim_node, offered.id).json()["data"]["amount"] == "736.155"


def test_a_refused_offer_is_flagged_when_accepted_later(
    node: StubNode, sim_node: AggregatorSimulator
) -> None:
    node.responder = lambda path, body: (200, b"<html>busy</html>")

    offered = sim_node.offer()

    assert (offered.state, offered.notify_ok) == ("refused", False)
    assert accept(sim_node, offered.id).status_code == 201  # the fork leaves the request key in place
    assert [v.kind for v in sim_node.violations()] == ["accept_after_failed_notify"]


def test_reoffer_reopens_the_request_and_a_second_accept_is_flagged(
    node: StubNode, sim_node: AggregatorSimulator
) -> None:
    order_id = sim_node.offer().id
    assert accept(sim_node, order_id).status_code == 201

    sim_node.reoffer(order_id)

    assert len(node.calls_to("/new_order")) == 2
    assert accept(sim_node, order_id).status_code == 201
    assert sim_node.order(order_id).accept_count == 2
    assert [v.kind for v in sim_node.violations()] == ["duplicate_accept"]


def test_tx_status_case_1_success_validates(node: StubNode, sim_node: AggregatorSimulator) -> None:
    order_id = accepted_order(sim_node)
    node.tx_status_answer({"status": "success", "psp": "lenco", "txId": "LN-1"})

    [result] = sim_node.poll_tx_status()

    [(_path, headers, body)] = node.calls_to("/tx_status")
    assert body == canonical_json.go_dumps({"currency": "NGN", "orderId": order_id})
    assert headers["X-Request-Signature"] == signing.sign(SECRET, body)
    assert "Content-Type" not in headers
    assert (result.case, result.applied) == (1, "validated")
    state = sim_node.order(order_id)
    assert state.state == "validated"
    assert [(f.tx_id, f.validation_status, f.source) for f in state.fulfilments] == [
        ("LN-1", "success", "tx_status")
    ]
    # The node's later fulfil of the same transfer is answered "already validated".
    assert fulfil(sim_node, order_id, psp="lenco", txId="LN-1", validationStatus="success").json()[
        "message"
    ] == ("Order already validated")


def test_tx_status_pending_does_nothing_and_failed_is_taken_back_next_run(
    node: StubNode, sim_node: AggregatorSimulator
) -> None:
    order_id = accepted_order(sim_node)
    node.tx_status_answer({"status": "pending", "psp": "", "txId": ""})
    assert [r.applied for r in sim_node.poll_tx_status()] == ["nothing"]
    assert sim_node.order(order_id).state == "accepted"

    node.tx_status_answer({"status": "failed", "psp": "lenco", "txId": "LN-2", "error": "Account closed"})
    assert [r.applied for r in sim_node.poll_tx_status()] == ["fulfilled_failed"]
    assert sim_node.order(order_id).state == "fulfilled"

    assert sim_node.poll_tx_status() == []
    state = sim_node.order(order_id)
    assert (state.state, state.outcome) == ("reassigned", "failed")
    assert sim_node.violations() == []


def test_tx_status_case_2_asks_about_the_pending_fulfilment(
    node: StubNode, sim_node: AggregatorSimulator
) -> None:
    order_id = accepted_order(sim_node)
    fulfil(sim_node, order_id, psp="lenco", txId="LN-3", validationStatus="pending")
    node.tx_status_answer({"status": "success", "psp": "lenco", "txId": "LN-3"})

    [result] = sim_node.poll_tx_status()

    [(_path, _headers, body)] = node.calls_to("/tx_status")
    assert json.loads(body) == {"currency": "NGN", "orderId": order_id, "psp": "lenco", "txId": "LN-3"}
    assert (result.case, result.applied) == (2, "validated")
    assert sim_node.order(order_id).fulfilments[0].validation_status == "success"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"status": "pending"}, "data.psp is not a string"),
        ({"status": "pending", "psp": "", "txId": None}, "data.txId is not a string"),
        ({"status": "failed", "psp": "", "txId": ""}, "data.error is not a string although status is failed"),
        ("pending", "data is not an object"),
        ({"psp": "", "txId": ""}, "data.status is not a string"),
    ],
)
def test_tx_status_answers_that_would_panic_the_fork_are_violations(
    node: StubNode, sim_node: AggregatorSimulator, data: Any, problem: str
) -> None:
    order_id = accepted_order(sim_node)
    node.tx_status_answer(data)

    [result] = sim_node.poll_tx_status()

    assert (result.applied, result.error) == ("violation", problem)
    assert [(v.kind, v.order_id) for v in sim_node.violations()] == [("tx_status_malformed", order_id)]
    assert sim_node.order(order_id).state == "accepted"


def test_tx_status_404_for_an_accepted_order_is_a_violation(
    node: StubNode, sim_node: AggregatorSimulator
) -> None:
    accepted_order(sim_node)
    node.tx_status_answer(None, status=404)

    [result] = sim_node.poll_tx_status()

    assert result.applied in ("error", "deleted")
    assert [v.kind for v in sim_node.violations()] == ["tx_status_error_for_accepted_order"]


def test_tx_status_waits_for_the_order_to_age(node: StubNode) -> None:
    with AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET, node_url=node.url) as simulator:
        accepted_order(simulator)
        assert simulator.poll_tx_status() == []  # 30 s have not passed
        assert len(simulator.poll_tx_status(force=True)) == 1


def test_background_poll_thread(node: StubNode) -> None:
    node.tx_status_answer({"status": "success", "psp": "lenco", "txId": "BG-1"})
    simulator = AggregatorSimulator(
        client_id=CLIENT_ID, secret=SECRET, node_url=node.url, tx_status_after=0.1
    )
    with simulator.start(poll_interval=0.05):
        order_id = accepted_order(simulator)
        done = simulator.wait_for_state(order_id, "validated", timeout=3)
        assert done.tx_status_calls >= 1
    assert not simulator.listening


# ------------------------------------------------------------------------------------- plumbing


def test_wait_for_times_out(sim: AggregatorSimulator) -> None:
    order_id = sim.offer(notify=False).id
    with pytest.raises(TimeoutError):
        sim.wait_for(lambda: False, timeout=0.05)
    with pytest.raises(TimeoutError, match="is 'offered'"):
        sim.wait_for_state(order_id, "validated", timeout=0.05)
    assert sim.wait_for(lambda: 42, timeout=0.05) == 42


def test_events_log_both_directions(node: StubNode, sim_node: AggregatorSimulator) -> None:
    order_id = sim_node.offer().id
    accept(sim_node, order_id)

    out = sim_node.events(direction="out")
    assert [(e.method, e.path, e.status, e.order_id) for e in out] == [("POST", "/new_order", 200, order_id)]
    assert out[0].body == {
        "amount": "5000",
        "currency": "NGN",
        "institution": "ABNGNGLA",
        "orderId": order_id,
    }
    [incoming] = sim_node.events(direction="in", path="/accept")
    assert (incoming.status, incoming.order_id, incoming.body["timestamp"] > 0) == (201, order_id, True)
    assert incoming.response["data"]["accountName"] == DEFAULT_ACCOUNT_NAME


def test_stop_releases_the_port_and_loopback_only() -> None:
    simulator = AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET).start()
    port = simulator.port
    simulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
    with AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET, port=port) as again:
        assert again.port == port
    with pytest.raises(ValueError, match="loopback"):
        AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET, host="0.0.0.0")  # noqa: S104
    with pytest.raises(ValueError, match="UUID"):
        AggregatorSimulator(client_id="nope", secret=SECRET)


def test_control_api_offers_for_demos(node: StubNode, sim_node: AggregatorSimulator) -> None:
    answer = requests.post(sim_node.base_url + "/_sim/offer", json={"amount": "1200"}, timeout=5).json()
    order_id = answer["data"]["id"]

    sim_node.wait_for(lambda: node.calls_to("/new_order"), timeout=3)
    listed = requests.get(sim_node.base_url + "/_sim/orders", timeout=5).json()["data"]
    assert [o["id"] for o in listed] == [order_id]
    assert listed[0]["amount"] == "1200"
