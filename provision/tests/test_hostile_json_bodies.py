"""Hostile JSON at every entry point that parses untrusted bytes: a 4xx envelope, nothing stored, no ERROR.

Deep nesting made the stdlib parser raise RecursionError (a 500); a ``\\ud800`` escape reached the
database as a lone surrogate, which PostgreSQL refuses with UnicodeEncodeError (a 500). Run on SQLite and
on PostgreSQL (``scripts/with-postgres.sh``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from orders.models import Order
from provision import canonical_json, signing
from provision.models import UsedSignature
from psp import registry
from psp.clients.lenco import webhook_signature as lenco_signature
from psp.models import WebhookEvent
from psp.sandbox import SIGNATURE_HEADER as SANDBOX_SIGNATURE_HEADER
from psp.sandbox import webhook_signature as sandbox_signature

pytestmark = pytest.mark.django_db

MTN_REFERENCE = "c29dd208-1b11-40ce-abd0-12c5470becab"
LENCO_API_KEY = "lenco-test-token"


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def with_deep_value(fields: bytes, depth: int) -> bytes:
    """A JSON object with the given leading members and an array nested ``depth`` levels."""
    return b"{" + fields + b',"x":' + deep(depth) + b"}"


def offer_fields(**values: bytes) -> bytes:
    members = {
        b"amount": b'"3750"',
        b"currency": b'"NGN"',
        b"institution": b'"ABNGNGLA"',
        b"orderId": b'"' + str(uuid.uuid4()).encode() + b'"',
        **{key.encode(): value for key, value in values.items()},
    }
    return b",".join(b'"' + key + b'":' + value for key, value in members.items())


HOSTILE_BODIES: dict[str, Callable[[], bytes]] = {
    "nested_5000": lambda: with_deep_value(offer_fields(), 5000),
    "nested_30000": lambda: with_deep_value(offer_fields(), 30000),
    "bare_nested_30000": lambda: deep(30000),
    "lone_surrogate_value": lambda: b"{" + offer_fields(institution=b'"\\ud800"') + b"}",
    "lone_surrogate_key": lambda: b"{" + offer_fields() + b',"\\udc00":"x"}',
    "lone_surrogate_nested": lambda: b"{" + offer_fields(excludePsps=b'["\\udbff"]') + b"}",
}


def seed_body(raw: bytes) -> bytes:
    """The hostile body with the seed flavour's timestamp first (when it is an object)."""
    if not raw.startswith(b"{"):
        return raw
    return b'{"timestamp":' + str(int(time.time())).encode() + b"," + raw[1:]


def post_new_order(client: Client, path: str, body: bytes) -> Any:
    signature = signing.sign(settings.AGGREGATOR_SECRET_KEY, body)
    return client.generic("POST", path, data=body, content_type="", HTTP_X_REQUEST_SIGNATURE=signature)


def post_seed(client: Client, body: bytes) -> Any:
    body = seed_body(body)
    signature = signing.sign(settings.AGGREGATOR_SECRET_KEY, body)
    header = f"HMAC {settings.AGGREGATOR_CLIENT_ID}:{signature}"
    return client.generic(
        "POST", "/orders", data=body, content_type="application/json", HTTP_AUTHORIZATION=header
    )


def post_mtn(client: Client, body: bytes) -> Any:
    return client.generic(
        "PUT", f"/webhooks/mtn_momo/{MTN_REFERENCE}", data=body, content_type="application/json"
    )


def post_lenco(client: Client, body: bytes) -> Any:
    signature = lenco_signature(body=body, api_key=LENCO_API_KEY)
    return client.generic(
        "POST",
        "/webhooks/lenco",
        data=body,
        content_type="application/json",
        HTTP_X_LENCO_SIGNATURE=signature,
    )


def post_sandbox(client: Client, body: bytes) -> Any:
    return client.generic(
        "POST",
        "/webhooks/sandbox",
        data=body,
        content_type="application/json",
        headers={SANDBOX_SIGNATURE_HEADER: sandbox_signature(body)},
    )


ENTRY_POINTS: dict[str, Callable[[Client, bytes], Any]] = {
    "new_order": lambda client, body: post_new_order(client, "/new_order", body),
    "tx_status": lambda client, body: post_new_order(client, "/tx_status", body),
    "verify_account": lambda client, body: post_new_order(client, "/verify_account", body),
    "seed_orders": post_seed,
    "mtn_momo_callback": post_mtn,
    "lenco_webhook": post_lenco,
    "sandbox_webhook": post_sandbox,
}


@pytest.fixture
def every_psp(settings: Any) -> Iterator[None]:
    settings.PSP = ["sandbox", "lenco", "mtn_momo"]
    settings.LENCO_API_KEY = LENCO_API_KEY
    settings.LENCO_ACCOUNT_ID = "6f2c3a9e-1b7d-4c55-9e0a-3d8b2f41c7aa"
    settings.MTN_MOMO_SUBSCRIPTION_KEY = settings.MTN_MOMO_API_USER = settings.MTN_MOMO_API_KEY = "k"
    registry.adapter.cache_clear()
    yield
    registry.adapter.cache_clear()


@pytest.mark.parametrize("body_name", HOSTILE_BODIES)
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_hostile_json_is_a_4xx_envelope_with_nothing_stored_and_no_error_logged(
    client: Client, every_psp: None, caplog: pytest.LogCaptureFixture, entry_point: str, body_name: str
) -> None:
    body = HOSTILE_BODIES[body_name]()

    with caplog.at_level(logging.WARNING):
        response = ENTRY_POINTS[entry_point](client, body)

    assert 400 <= response.status_code < 500, response.content[:300]
    answer = response.json()
    assert answer["status"] == "error"
    assert isinstance(answer["message"], str)
    assert answer["message"]
    assert isinstance(answer["data"]["code"], str)
    assert Order.objects.count() == 0
    assert WebhookEvent.objects.count() == 0
    assert UsedSignature.objects.count() <= 1  # the seed flavour may remember a valid signature
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_mtn_callback_that_was_a_500_on_postgresql_is_a_400_naming_the_problem(
    client: Client, every_psp: None
) -> None:
    response = post_mtn(client, b'{"status":"\\ud800"}')

    assert response.status_code == 400
    assert response.json()["data"]["code"] == "malformed_body"
    assert "surrogate" in response.json()["message"]
    assert WebhookEvent.objects.count() == 0


def test_a_surrogate_pair_escape_is_one_character_and_accepted(client: Client) -> None:
    order_id = str(uuid.uuid4())
    body = (
        b'{"amount":"3750","currency":"NGN","institution":"AB\\ud83d\\ude00","orderId":"'
        + order_id.encode()
        + b'"}'
    )

    response = post_new_order(client, "/new_order", body)

    assert response.status_code == 200
    assert Order.objects.get(order_id=order_id).institution == "AB\U0001f600"


def test_signature_check_still_follows_go_for_a_lone_surrogate() -> None:
    """Go decodes ``\\ud800`` as U+FFFD when it re-marshals: the canonical form is unchanged by the new
    parser, only the data the node would act on is refused."""
    assert canonical_json.canonicalize(b'{"a":"\\ud800"}') == '{"a":"\ufffd"}'.encode()
