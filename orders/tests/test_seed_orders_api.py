"""POST /orders: the seed flavour, Authorization: HMAC <client_id>:<sig> with a timestamp in the body."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from orders.models import Flavour, Order
from provision import signing
from provision.models import UsedSignature
from provision.testing import post_hmac

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


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Missing Authorization header"),
        ("Bearer abc", "Invalid Authorization header: expected HMAC <client_id>:<signature>"),
        ("HMAC", "Invalid Authorization header: expected HMAC <client_id>:<signature>"),
        ("HMAC nocolon", "Invalid Authorization header format: expected HMAC <client_id>:<signature>"),
        (f"HMAC {CLIENT_ID}:", "Invalid Authorization header format: expected HMAC <client_id>:<signature>"),
        (
            f"HMAC {CLIENT_ID}:not-hex!",
            "Invalid Authorization header format: expected HMAC <client_id>:<signature>",
        ),
    ],
)
def test_malformed_authorization_is_401(client: Client, authorization: str | None, message: str) -> None:
    body, _ = _signed(seed_order(), int(time.time()))

    response = _raw(client, body, authorization)

    assert response.status_code == 401
    assert response.json() == {
        "status": "error",
        "message": message,
        "data": {"code": "authentication_failed"},
    }


def test_unknown_client_id_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), client_id=str(uuid.uuid4()))

    assert response.status_code == 401
    assert response.json()["message"] == "Unknown client id"


def test_bad_signature_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), secret="wrong-secret")

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid HMAC signature"


def test_stale_timestamp_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), timestamp=time.time() - 301)

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid timestamp: too old"


def test_far_future_timestamp_is_401(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(), timestamp=time.time() + 120)

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid timestamp: in the future"


@pytest.mark.parametrize("timestamp", [None, 0, "soon", True])
def test_missing_or_invalid_timestamp_is_401(client: Client, timestamp: object) -> None:
    payload = seed_order()
    body, signature = _signed(payload, timestamp) if timestamp is not None else _signed_without_ts(payload)

    response = _raw(client, body, f"HMAC {CLIENT_ID}:{signature}")

    assert response.status_code == 401
    assert response.json()["message"] == "Missing or invalid timestamp in payload"


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
    assert replay.status_code == 401
    assert replay.json()["message"] == "Replayed request: this signature was already used"
    assert UsedSignature.objects.count() == 1


def test_non_json_body_is_401_envelope(client: Client) -> None:
    response = _raw(client, b"{not json", f"HMAC {CLIENT_ID}:{'ab' * 32}")

    assert response.status_code == 401
    assert response.json()["status"] == "error"
