"""GET /health and GET /info answer exactly as the aggregator contract says."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from balances.models import Balance


def test_health_says_live_and_lists_currencies(client: Client) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "Node is live",
        "data": {"currencies": ["NGN", "KES"]},
    }


@pytest.mark.django_db
def test_info_has_every_contract_field_in_its_go_type(client: Client) -> None:
    Balance.objects.create(currency="NGN", total=Decimal("100000.00"), reserved=Decimal("2500.50"))

    response = client.get("/info")

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["status", "message", "data"]
    assert body["status"] == "success"
    service = body["data"]["serviceInfo"]
    assert service["currencies"] == ["NGN", "KES"]
    assert isinstance(service["version"], str)
    assert isinstance(service["lastUpdated"], str)
    assert isinstance(service["totalPSPs"], int)
    assert not isinstance(service["totalPSPs"], bool)
    assert body["data"]["totalBalances"] == {
        "NGN": {"availableBalance": "97499.5", "totalBalance": "100000"},
        "KES": {"availableBalance": "0", "totalBalance": "0"},
    }
    assert isinstance(body["data"]["balances"], list)


@pytest.mark.django_db
def test_info_needs_no_authentication_and_ignores_content_type(client: Client) -> None:
    response = client.get("/info", content_type="text/plain")

    assert response.status_code == 200
