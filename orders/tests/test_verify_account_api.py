"""POST /verify_account: the account holder's name as the string ``data``, or a 4xx error."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from provision.testing import post_signed_raw
from psp import registry
from psp.base import PspUnavailable
from psp.sandbox import SandboxAdapter

pytestmark = pytest.mark.django_db


def test_resolved_name_is_the_string_data(client: Client) -> None:
    response = post_signed_raw(
        client, "/verify_account", {"accountIdentifier": "0123456789", "institution": "ABNGNGLA"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "message": "Account name retrieved",
        "data": "SANDBOX ACCOUNT 6789",
    }


def test_unknown_account_is_a_4xx_with_a_field_message(client: Client) -> None:
    response = post_signed_raw(
        client, "/verify_account", {"accountIdentifier": "0123450000", "institution": "ABNGNGLA"}
    )

    assert response.status_code == 422
    assert response.json()["status"] == "error"
    assert "accountIdentifier" in response.json()["data"]["errors"]


def test_missing_fields_are_400(client: Client) -> None:
    response = post_signed_raw(client, "/verify_account", {"institution": "ABNGNGLA"})

    assert response.status_code == 400
    assert "accountIdentifier" in response.json()["data"]["errors"]


def test_psp_down_is_503(client: Client, monkeypatch: Any) -> None:
    class Down(SandboxAdapter):
        def resolve_account(self, **kwargs: Any) -> Any:
            raise PspUnavailable("timeout", psp="sandbox")

    monkeypatch.setattr(registry, "adapter", lambda name: Down())

    response = post_signed_raw(
        client, "/verify_account", {"accountIdentifier": "0123456789", "institution": "ABNGNGLA"}
    )

    assert response.status_code == 503


def test_unsigned_request_is_401(client: Client) -> None:
    response = client.generic("POST", "/verify_account", data=b"{}", content_type="")

    assert response.status_code == 401
