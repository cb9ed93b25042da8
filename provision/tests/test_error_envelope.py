"""Every API error uses the envelope {"status":"error","message":...,"data":...}."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import path
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class _EchoApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, object]]):
        amount = serializers.DecimalField(max_digits=10, decimal_places=2)
        currency = serializers.CharField(max_length=3)

    def post(self, request: Request) -> Response:
        self.InputSerializer(data=request.data).is_valid(raise_exception=True)
        return Response({"status": "success"})


def _boom(request: object) -> HttpResponse:
    raise RuntimeError("boom: a secret detail that must not leak")


urlpatterns = [path("echo", _EchoApi.as_view()), path("boom", _boom)]
handler404 = "provision.exception_handler.json_404"
handler500 = "provision.exception_handler.json_500"


@override_settings(ROOT_URLCONF=__name__)
def test_validation_error_is_400_with_field_messages(client: Client) -> None:
    response = client.post("/echo", data=b'{"amount": "abc"}', content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["message"] == "Validation failed"
    assert body["data"]["code"] == "invalid"
    assert set(body["data"]["errors"]) == {"amount", "currency"}


@override_settings(ROOT_URLCONF=__name__)
def test_malformed_json_is_400_envelope(client: Client) -> None:
    response = client.post("/echo", data=b"{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["status"] == "error"


def test_unknown_route_is_404_json(client: Client) -> None:
    response = client.get("/no/such/route")

    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "Route Not Found", "data": {"code": "not_found"}}


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_unhandled_error_is_500_json_with_request_id_and_no_traceback() -> None:
    client = Client(raise_request_exception=False)

    response = client.get("/boom", HTTP_X_REQUEST_ID="req-12345678")

    assert response.status_code == 500
    assert response.json() == {
        "status": "error",
        "message": "Internal server error",
        "data": {"code": "server_error", "requestId": "req-12345678"},
    }
    assert b"secret detail" not in response.content
    assert response["X-Request-ID"] == "req-12345678"


@pytest.mark.django_db
def test_migrations_are_up_to_date() -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
