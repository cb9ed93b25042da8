"""Amounts in offers (POST /new_order strings, POST /orders JSON numbers): plain ASCII decimals within
the documented maximum, stored digit for digit or refused with a 400 naming the field, never rounded.

Run on SQLite and PostgreSQL: SQLite keeps 15 significant digits of a decimal column, which is why the
maximum is 99999999999.9999 and not what numeric(20, 4) alone would allow.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from balances import money
from orders.models import Order
from provision import canonical_json, signing
from provision.testing import post_hmac, post_signed_raw

pytestmark = pytest.mark.django_db


def offer(amount: object) -> dict[str, Any]:
    return {"amount": amount, "currency": "NGN", "institution": "ABNGNGLA", "orderId": str(uuid.uuid4())}


def seed_order(**overrides: object) -> dict[str, Any]:
    expires = (datetime.now(tz=UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "orderId": str(uuid.uuid4()),
        "amount": 736.155,
        "currency": "NGN",
        "recipient": {"institution": "ABNGNGLA", "accountIdentifier": "0123456789"},
        "expiresAt": expires,
        **overrides,
    }


def post_seed_raw(client: Client, body: bytes) -> Any:
    """The seed flavour with the number text exactly as given (go_dumps would re-format floats)."""
    signature = signing.sign(settings.AGGREGATOR_SECRET_KEY, body)
    return client.generic(
        "POST",
        "/orders",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"HMAC {settings.AGGREGATOR_CLIENT_ID}:{signature}",
    )


def seed_body_with_amount(number_text: str) -> bytes:
    payload = {**seed_order(amount=0), "timestamp": int(time.time())}
    return canonical_json.go_dumps(payload).replace(b'"amount":0', b'"amount":' + number_text.encode())


def test_the_documented_maximum_follows_from_the_money_field_and_sqlites_15_digits() -> None:
    assert (money.MONEY_MAX_DIGITS, money.MONEY_DECIMAL_PLACES) == (20, 4)
    assert money.MAX_AMOUNT == Decimal("99999999999.9999")


@pytest.mark.parametrize(
    "amount",
    [
        "\uff15\uff10\uff10\uff10",  # fullwidth digits
        "\u0665\u0660\u0660\u0660",  # Arabic-Indic digits
        "\u096b\u0966\u0966\u0966",  # Devanagari digits
        "5_000",
        " 5000 ",
        "5000 ",
        "5000\n",
        "\t5000",
        "1e3",
        "1E3",
        "5000e0",
        "+5000",
        "-5000",
        ".5",
        "5.",
        "5..0",
        "5.0.0",
        "1,000",
        "0x10",
        "NaN",
        "Infinity",
        "0",
        "0.0000",
        "",
        "5000.00001",  # more precision than the column keeps
        "999999999999999.9999",  # was stored on SQLite as 1000000000000000.0000
        "100000000000",  # one above the maximum's integer part
        "100000000000.0000",
        "1" + "0" * 400,
    ],
)
def test_new_order_amount_that_is_not_a_plain_decimal_in_range_is_400_and_nothing_stored(
    client: Client, amount: str
) -> None:
    response = post_signed_raw(client, "/new_order", offer(amount))

    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert list(response.json()["data"]["errors"]) == ["amount"]
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    "amount",
    ["3750", "1500.25", "0.0001", "0.5", "007", "99999999999.9999", "99999999999", "12345678901.2345"],
)
def test_new_order_amount_is_stored_digit_for_digit(client: Client, amount: str) -> None:
    body = offer(amount)

    response = post_signed_raw(client, "/new_order", body)

    assert response.status_code == 200
    order = Order.objects.get(order_id=body["orderId"])
    order.refresh_from_db()
    assert order.amount == Decimal(amount)


def test_refusal_names_the_rule(client: Client) -> None:
    response = post_signed_raw(client, "/new_order", offer("\uff15\uff10\uff10\uff10"))

    assert response.json()["data"]["errors"]["amount"] == [
        'Must be a positive plain decimal: ASCII digits 0-9 and at most one ".", with no sign, spaces, '
        'underscores or exponent, e.g. "3750" or "1500.25".'
    ]


def test_too_many_decimals_and_too_large_have_their_own_messages(client: Client) -> None:
    places = post_signed_raw(client, "/new_order", offer("1.00001")).json()["data"]["errors"]["amount"]
    large = post_signed_raw(client, "/new_order", offer("100000000000")).json()["data"]["errors"]["amount"]

    assert places == ["Must have at most 4 decimal places (more would be rounded by the database)."]
    assert large == ["Must be at most 99999999999.9999."]


@pytest.mark.parametrize("number", ["736.155", "3750", "0.5", "99999999999.9999", "7.36155e2"])
def test_seed_number_amount_is_stored_exactly(client: Client, number: str) -> None:
    body = seed_body_with_amount(number)

    response = post_seed_raw(client, body)

    assert response.status_code == 200
    order = Order.objects.get()
    order.refresh_from_db()
    assert order.amount == Decimal(number)


@pytest.mark.parametrize(
    "number", ["736.15501", "999999999999999.9999", "100000000000", "0", "-5", "true", '"5_000"', '"1e3"']
)
def test_seed_amount_out_of_range_or_too_precise_is_400_and_nothing_stored(
    client: Client, number: str
) -> None:
    response = post_seed_raw(client, seed_body_with_amount(number))

    assert response.status_code == 400
    assert list(response.json()["data"]["errors"]) == ["amount"]
    assert Order.objects.count() == 0


def test_seed_token_amount_follows_the_same_rule(client: Client) -> None:
    response = post_hmac(client, "/orders", seed_order(tokenAmount="\u0665"))

    assert response.status_code == 400
    assert list(response.json()["data"]["errors"]) == ["tokenAmount"]
    assert Order.objects.count() == 0
