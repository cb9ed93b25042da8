"""POST /orders: the seed flavour, Authorization: HMAC <client_id>:<sig> with a timestamp in the body."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from orders.models import Flavour, Order
from provision import signing
from provision.auth import CANONICAL_FALLBACK_MAX_BYTES, CANONICAL_FALLBACK_MAX_DEPTH
from provision.models import UsedSignature
from provision.testing import numbers_body, post_hmac

pytestmark = pytest.mark.django_db

SECRET = "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw="
CLIENT_ID = "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b"


def seed_order(**overrides: object) -> dict[str, object]:
    expires = (datetime.now(tz=UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "orderId": str(uuid.uuid4()),
        "amount": 736.155,
        "currency": "NGN",
        "token": "DAI",
        "tokenAmount": 0.5,
        "network": "base-sepolia",
        "recipient": {
            "institution": "ABNGNGLA",
            "accountIdentifier": "0123456789",
            "accountName": "Adébáyọ̀ Ọlá",
            "memo": "Payment <invoice #42> & co",
        },
        "reference": "ORDER-2025-001",
        "expiresAt": expires,
        **overrides,
    }


def test_seed_order_is_stored_with_recipient_and_exact_decimal_amount(client: Client) -> None:
    body = seed_order()

    response = post_hmac(client, "/orders", body)

    assert response.status_code == 200
    assert response.json()["data"] == {"orderId": body["orderId"], "status": "pending", "state": "received"}
    order = Order.objects.get(order_id=body["orderId"])
    assert order.flavour == Flavour.SEED
    assert order.amount == Decimal("736.155")
    assert order.account_name == "Adébáyọ̀ Ọlá"
    assert order.memo == "Payment <invoice #42> & co"
    assert order.reference == "ORDER-2025-001"


def test_redelivery_is_idempotent(client: Client) -> None:
    body = seed_order()
    post_hmac(client, "/orders", body)

    response = post_hmac(client, "/orders", body, timestamp=time.time() + 1)

    assert response.status_code == 200
    assert Order.objects.filter(order_id=body["orderId"]).count() == 1


def test_invalid_seed_order_is_400_with_nested_field_messages(client: Client) -> None:
    body = seed_order(recipient={"institution": "ABNGNGLA"}, expiresAt="tomorrow")

    response = post_hmac(client, "/orders", body)

    assert response.status_code == 400
    errors = response.json()["data"]["errors"]
    assert "recipient.accountIdentifier" in errors
    assert "expiresAt" in errors
    assert Order.objects.count() == 0


def _raw(client: Client, body: bytes, authorization: str | None) -> Any:
    extra: dict[str, Any] = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return client.generic("POST", "/orders", data=body, content_type="application/json", **extra)


def _signed(payload: dict[str, object], timestamp: object) -> tuple[bytes, str]:
    from provision import canonical_json

    body = canonical_json.go_dumps({**payload, "timestamp": timestamp})
    return body, signing.sign(SECRET, body)


# Every authentication failure is answered alike (issue 17 item 5): an unsigned caller must not learn
# whether the client id is right or what the node's clock says; the reason is only logged.
REFUSED = {"status": "error", "message": "Authentication failed", "data": {"code": "authentication_failed"}}


def assert_refused_alike(response: Any) -> None:
    assert response.status_code == 401
    assert response.json() == REFUSED
    assert response["WWW-Authenticate"] == "HMAC"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer abc", "HMAC", "HMAC nocolon", f"HMAC {CLIENT_ID}:", f"HMAC {CLIENT_ID}:not-hex!"],
)
def test_malformed_authorization_is_401(client: Client, authorization: str | None) -> None:
    body, _ = _signed(seed_order(), int(time.time()))

    response = _raw(client, body, authorization)

    assert_refused_alike(response)


def test_unknown_client_id_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), client_id=str(uuid.uuid4()))

    assert_refused_alike(response)
    assert Order.objects.count() == 0


def test_bad_signature_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), secret="wrong-secret")

    assert_refused_alike(response)


def test_stale_timestamp_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), timestamp=time.time() - 301)

    assert_refused_alike(response)


def test_far_future_timestamp_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), timestamp=time.time() + 120)

    assert_refused_alike(response)


@pytest.mark.parametrize("timestamp", [None, 0, "soon", True])
def test_missing_or_invalid_timestamp_is_401(client: Client, timestamp: object) -> None:
    payload = seed_order()
    body, signature = _signed(payload, timestamp) if timestamp is not None else _signed_without_ts(payload)

    response = _raw(client, body, f"HMAC {CLIENT_ID}:{signature}")

    assert_refused_alike(response)


def _signed_without_ts(payload: dict[str, object]) -> tuple[bytes, str]:
    from provision import canonical_json

    body = canonical_json.go_dumps(payload)
    return body, signing.sign(SECRET, body)


def test_string_timestamp_is_verified_as_a_number_like_the_aggregator(client: Client) -> None:
    from provision import canonical_json

    payload = seed_order()
    now = int(time.time())
    signed_as_number = canonical_json.go_dumps({**payload, "timestamp": now})
    sent = canonical_json.go_dumps({**payload, "timestamp": str(now)})

    response = _raw(client, sent, f"HMAC {CLIENT_ID}:{signing.sign(SECRET, signed_as_number)}")

    assert response.status_code == 200


def test_replayed_request_is_401(client: Client) -> None:
    body, signature = _signed(seed_order(), int(time.time()))
    first = _raw(client, body, f"HMAC {CLIENT_ID}:{signature}")

    replay = _raw(client, body, f"HMAC {CLIENT_ID}:{signature}")

    assert first.status_code == 200
    assert_refused_alike(replay)
    assert UsedSignature.objects.count() == 1


def test_non_json_body_is_401_envelope(client: Client) -> None:
    response = _raw(client, b"{not json", f"HMAC {CLIENT_ID}:{'ab' * 32}")

    assert response.status_code == 401
    assert response.json()["status"] == "error"


def test_signed_body_that_is_not_a_json_object_is_refused_alike(client: Client) -> None:
    body = b"[1,2]"

    response = _raw(client, body, f"HMAC {CLIENT_ID}:{signing.sign(SECRET, body)}")

    assert_refused_alike(response)


def test_unsigned_caller_cannot_tell_a_right_client_id_or_a_fresh_timestamp(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    fresh, stale = int(time.time()), int(time.time()) - 3600
    probes = [
        (CLIENT_ID, fresh),
        (CLIENT_ID, stale),
        (str(uuid.uuid4()), fresh),
        (str(uuid.uuid4()), stale),
    ]

    with caplog.at_level(logging.WARNING, logger="provision.auth"):
        answers = [
            _raw(client, _signed(seed_order(), timestamp)[0], f"HMAC {client_id}:{'ab' * 32}")
            for client_id, timestamp in probes
        ]

    for answer in answers:
        assert_refused_alike(answer)
    # the signature was checked first: none of them got as far as the client id or the clock
    assert [getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "auth.refused"] == [
        "bad_signature"
    ] * 4


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_client_id", "unknown_client_id"),
        ("stale", "timestamp_too_old"),
        ("future", "timestamp_in_the_future"),
        ("no_timestamp", "invalid_timestamp"),
        ("garbage_signature", "bad_signature"),
        ("no_header", "malformed_header"),
    ],
)
def test_each_refusal_is_logged_with_its_reason(
    client: Client, caplog: pytest.LogCaptureFixture, case: str, reason: str
) -> None:
    now = int(time.time())
    timestamps = {"stale": now - 3600, "future": now + 3600, "no_timestamp": None}
    payload = seed_order()
    if case == "no_timestamp":
        body, signature = _signed_without_ts(payload)
    else:
        body, signature = _signed(payload, timestamps.get(case, now))
    client_id = str(uuid.uuid4()) if case == "wrong_client_id" else CLIENT_ID
    header = (
        None
        if case == "no_header"
        else f"HMAC {client_id}:{'ab' * 32 if case == 'garbage_signature' else signature}"
    )

    with caplog.at_level(logging.WARNING, logger="provision.auth"):
        response = _raw(client, body, header)

    assert_refused_alike(response)
    assert [getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "auth.refused"] == [
        reason
    ]


# --- what a refused signature costs (issue 17 item 3) ----------------------------------------------------


def test_signature_over_canonical_form_of_a_pretty_body_is_accepted(client: Client) -> None:
    """The seed flavour's fallback: the aggregator's middleware signs the Go re-marshal of the body."""
    payload = {**seed_order(), "timestamp": int(time.time())}
    pretty = json.dumps(payload, indent=2, ensure_ascii=False).encode()
    from provision import canonical_json

    signature = signing.sign(SECRET, canonical_json.canonicalize(pretty))

    response = _raw(client, pretty, f"HMAC {CLIENT_ID}:{signature}")

    assert response.status_code == 200
    assert Order.objects.get(order_id=payload["orderId"]).amount == Decimal("736.155")


def _pretty_to_size(size: int) -> tuple[bytes, str]:
    """A valid seed order, pretty-printed and padded with whitespace to ``size`` bytes, and the signature
    over its canonical form (not over its bytes)."""
    from provision import canonical_json

    payload = {**seed_order(), "timestamp": int(time.time())}
    pretty = json.dumps(payload, indent=2).encode()
    body = pretty[:-1] + b" " * (size - len(pretty)) + b"}"
    return body, signing.sign(SECRET, canonical_json.canonicalize(body))


def test_canonical_fallback_covers_bodies_up_to_its_size_limit(client: Client) -> None:
    body, signature = _pretty_to_size(CANONICAL_FALLBACK_MAX_BYTES)

    response = _raw(client, body, f"HMAC {CLIENT_ID}:{signature}")

    assert response.status_code == 200


def test_canonical_fallback_is_not_tried_past_its_size_limit(
    client: Client, canonical_calls: list[str]
) -> None:
    body, signature = _pretty_to_size(CANONICAL_FALLBACK_MAX_BYTES + 1)
    canonical_calls.clear()  # signing it above used the encoder

    response = _raw(client, body, f"HMAC {CLIENT_ID}:{signature}")

    assert_refused_alike(response)
    assert canonical_calls == []
    assert Order.objects.count() == 0


def test_canonical_fallback_is_not_tried_past_its_depth_limit(client: Client) -> None:
    from provision import canonical_json

    nested: object = "x"
    for _ in range(CANONICAL_FALLBACK_MAX_DEPTH):
        nested = [nested]
    payload = {**seed_order(), "extra": nested, "timestamp": int(time.time())}
    pretty = json.dumps(payload, indent=1).encode()
    signature = signing.sign(SECRET, canonical_json.go_dumps(payload))

    response = _raw(client, pretty, f"HMAC {CLIENT_ID}:{signature}")

    assert_refused_alike(response)
    assert Order.objects.count() == 0


def test_garbage_signature_on_a_large_body_is_refused_without_re_marshalling(
    client: Client, canonical_calls: list[str]
) -> None:
    response = _raw(client, numbers_body(), f"HMAC {CLIENT_ID}:{'ab' * 32}")

    assert_refused_alike(response)
    assert canonical_calls == []


def test_garbage_signature_on_a_small_body_costs_one_bounded_re_marshal(
    client: Client, canonical_calls: list[str]
) -> None:
    timestamp = b'{"timestamp":%d,' % int(time.time())
    body = timestamp + numbers_body(CANONICAL_FALLBACK_MAX_BYTES - len(timestamp) + 1)[1:]

    response = _raw(client, body, f"HMAC {CLIENT_ID}:{'ab' * 32}")

    assert len(body) <= CANONICAL_FALLBACK_MAX_BYTES
    assert_refused_alike(response)
    assert canonical_calls == ["go_loads", "go_dumps"]


def test_garbage_signatures_cost_little_cpu(client: Client) -> None:
    """Coarse guard (the tests above count the work): the re-marshal of 64 KB of numbers took ~60-180 ms
    of CPU per request before the signature was refused."""
    started = time.process_time()

    statuses = {_raw(client, numbers_body(), f"HMAC {CLIENT_ID}:{'ab' * 32}").status_code for _ in range(20)}

    assert statuses == {401}
    assert time.process_time() - started < 0.6  # 20 requests: 30 ms each at most, on any CI machine
