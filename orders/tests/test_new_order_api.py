"""POST /new_order: the Go aggregator's offer, signed with X-Request-Signature over the raw body."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from orders.models import Order, OrderStatus
from provision import signing
from provision.testing import numbers_body, post_signed_raw

pytestmark = pytest.mark.django_db


def offer(**overrides: object) -> dict[str, object]:
    return {
        "amount": "3750",
        "currency": "NGN",
        "institution": "ABNGNGLA",
        "orderId": str(uuid.uuid4()),
        **overrides,
    }


def test_valid_offer_is_stored_and_answered_like_the_contract(client: Client) -> None:
    body = offer()

    response = post_signed_raw(client, "/new_order", body)

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "Order received",
        "data": {"orderId": body["orderId"], "status": "pending", "state": "received"},
    }
    order = Order.objects.get(order_id=body["orderId"])
    assert order.amount == Decimal("3750")
    assert (order.currency, order.institution, order.status) == ("NGN", "ABNGNGLA", OrderStatus.RECEIVED)


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/x-www-form-urlencoded"])
def test_offer_is_parsed_whatever_the_content_type_says(client: Client, content_type: str) -> None:
    from provision import canonical_json

    body = offer()
    raw = canonical_json.go_dumps(body)
    signature = signing.sign("E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw=", raw)

    response = client.generic(
        "POST", "/new_order", data=raw, content_type=content_type, HTTP_X_REQUEST_SIGNATURE=signature
    )

    assert response.status_code == 200
    assert Order.objects.filter(order_id=body["orderId"]).exists()


def test_exclude_psps_is_kept(client: Client) -> None:
    body = offer(excludePsps=["lenco"])

    post_signed_raw(client, "/new_order", body)

    assert Order.objects.get(order_id=body["orderId"]).exclude_psps == ["lenco"]


def test_same_offer_twice_gives_one_order_and_answers_its_state(client: Client) -> None:
    body = offer()
    post_signed_raw(client, "/new_order", body)

    response = post_signed_raw(client, "/new_order", body)

    assert response.status_code == 200
    assert response.json()["message"] == "Order already received"
    assert Order.objects.filter(order_id=body["orderId"]).count() == 1


def test_same_id_with_different_terms_is_409_and_changes_nothing(client: Client) -> None:
    body = offer()
    post_signed_raw(client, "/new_order", body)

    response = post_signed_raw(client, "/new_order", {**body, "amount": "9999"})

    assert response.status_code == 409
    assert response.json()["data"]["code"] == "order_conflict"
    assert Order.objects.get(order_id=body["orderId"]).amount == Decimal("3750")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "-5"),
        ("amount", "abc"),
        ("amount", "1e3x"),
        ("amount", True),
        ("currency", "N1"),
        ("orderId", "../../etc"),
        ("institution", ""),
    ],
)
def test_invalid_offer_is_400_with_field_message_and_nothing_stored(
    client: Client, field: str, value: object
) -> None:
    body = offer(**{field: value})

    response = post_signed_raw(client, "/new_order", body)

    assert response.status_code == 400
    assert field in response.json()["data"]["errors"]
    assert Order.objects.count() == 0


def test_missing_fields_are_each_named(client: Client) -> None:
    response = post_signed_raw(client, "/new_order", {"orderId": str(uuid.uuid4())})

    assert response.status_code == 400
    assert set(response.json()["data"]["errors"]) == {"amount", "currency", "institution"}


def test_missing_signature_is_401_envelope(client: Client) -> None:
    response = client.generic("POST", "/new_order", data=b'{"orderId":"x"}', content_type="")

    assert response.status_code == 401
    assert response.json()["status"] == "error"
    assert response.json()["message"] == "Missing X-Request-Signature header"


def test_bad_signature_is_401_and_does_not_reveal_the_expected_one(client: Client, settings: Any) -> None:
    body = b'{"amount":"3750","currency":"NGN","institution":"ABNGNGLA","orderId":"abc"}'
    expected = signing.sign("E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw=", body)

    response = client.generic(
        "POST", "/new_order", data=body, content_type="", HTTP_X_REQUEST_SIGNATURE="ab" * 32
    )

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid signature"
    assert expected not in response.content.decode()
    assert Order.objects.count() == 0


def test_signature_with_retired_secret_is_refused(client: Client) -> None:
    response = post_signed_raw(client, "/new_order", offer(), secret="an-old-secret-no-longer-configured")

    assert response.status_code == 401


def test_previous_secret_is_accepted_while_rotating(client: Client, settings: Any) -> None:
    settings.AGGREGATOR_PREVIOUS_SECRET_KEY = "the-previous-secret"

    response = post_signed_raw(client, "/new_order", offer(), secret="the-previous-secret")

    assert response.status_code == 200


def test_signature_over_canonical_form_of_a_pretty_body_is_refused(client: Client) -> None:
    """X-Request-Signature covers the raw body (protocol A3, C.3): the Go aggregator sends the canonical
    bytes it signed. Re-marshalling for every refused signature cost ~1 ms of CPU per KB to anyone; the
    canonical fallback is the seed flavour's (POST /orders) alone."""
    payload = offer()
    pretty = b'{\n  "orderId": "%s", "amount": "3750", "currency": "NGN", "institution": "ABNGNGLA"\n}' % (
        str(payload["orderId"]).encode()
    )
    from provision import canonical_json

    signature = signing.sign(
        "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw=", canonical_json.canonicalize(pretty)
    )

    response = client.generic(
        "POST", "/new_order", data=pretty, content_type="", HTTP_X_REQUEST_SIGNATURE=signature
    )

    assert response.status_code == 401
    assert response.json()["message"] == "Invalid signature"
    assert Order.objects.count() == 0


@pytest.mark.parametrize("path", ["/new_order", "/tx_status", "/verify_account"])
def test_garbage_signature_is_refused_on_the_raw_body_without_reading_it(
    client: Client, canonical_calls: list[str], path: str
) -> None:
    body = numbers_body()

    response = client.generic("POST", path, data=body, content_type="", HTTP_X_REQUEST_SIGNATURE="ab" * 32)

    assert response.status_code == 401
    assert canonical_calls == []
    assert Order.objects.count() == 0


def test_garbage_signatures_on_large_bodies_cost_little_cpu(client: Client) -> None:
    """Coarse guard (the test above counts the work): re-marshalling 64 KB of numbers took ~60-180 ms of
    CPU per request; refusing on the raw-body HMAC takes well under a millisecond plus the request."""
    body = numbers_body()
    started = time.process_time()

    statuses = {
        client.generic(
            "POST", "/new_order", data=body, content_type="", HTTP_X_REQUEST_SIGNATURE="ab" * 32
        ).status_code
        for _ in range(20)
    }

    assert statuses == {401}
    assert time.process_time() - started < 0.6  # 20 requests: 30 ms each at most, on any CI machine


def test_body_over_the_size_limit_is_413(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    body = offer(institution="A" * 300)

    response = post_signed_raw(client, "/new_order", body)

    assert response.status_code == 413
    assert response.json()["status"] == "error"
    assert Order.objects.count() == 0
