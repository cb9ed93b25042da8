"""The OpenAPI schema describes the aggregator-facing and webhook API, and the API keeps to it.

The schemathesis run generates requests from the schema, signs each one the way its caller would (the
Go aggregator's X-Request-Signature, the seed flavour's HMAC Authorization with a fresh timestamp, the
sandbox PSP's webhook signature) so generation reaches the views, and checks every answer: no 5xx, a
documented status code and content type, a body that matches the documented schema.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.constants import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from provision import api_docs, canonical_json, signing

EXPECTED_OPERATIONS = {
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/info"),
    ("POST", "/new_order"),
    ("POST", "/orders"),
    ("POST", "/tx_status"),
    ("POST", "/verify_account"),
    ("POST", "/webhooks/{psp}"),
    ("PUT", "/webhooks/{psp}"),
    ("POST", "/webhooks/{psp}/{reference}"),
    ("PUT", "/webhooks/{psp}/{reference}"),
}
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)
EXAMPLES_PER_OPERATION = 40


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_schema_lists_exactly_the_aggregator_webhook_and_health_operations(client: Client) -> None:
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.oai.openapi+json"
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert operations(document) == EXPECTED_OPERATIONS
    assert document["components"]["securitySchemes"] == {
        "HmacAuthorization": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": document["components"]["securitySchemes"]["HmacAuthorization"]["description"],
        },
        "RequestSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Request-Signature",
            "description": document["components"]["securitySchemes"]["RequestSignature"]["description"],
        },
    }
    assert document["paths"]["/new_order"]["post"]["security"] == [{"RequestSignature": []}]
    assert document["paths"]["/orders"]["post"]["security"] == [{"HmacAuthorization": []}]


def test_schema_is_valid_openapi_and_also_served_as_yaml(client: Client) -> None:
    from drf_spectacular.validation import validate_schema

    validate_schema(api_docs.schema())
    response = client.get("/api/schema/", {"format": "yaml"})

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/json", "application/json"),
        ("application/json, text/plain, */*", "application/json"),
        ("application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json"),
        ("*/*", "application/vnd.oai.openapi+json"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "application/vnd.oai.openapi+json"),
    ],
)
def test_schema_answers_json_to_a_json_accept_header(client: Client, accept: str, content_type: str) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert json.loads(response.content)["openapi"].startswith("3.")


def test_schema_answers_json_without_an_accept_header(client: Client) -> None:
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert json.loads(response.content)["paths"].keys() == api_docs.schema()["paths"].keys()


def test_schema_answers_yaml_to_a_yaml_accept_header(client: Client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/yaml")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert response.content.startswith(b"openapi: 3.")


def test_docs_page_renders_every_operation_without_loading_anything_external(client: Client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    for method, path in EXPECTED_OPERATIONS:
        assert f"<code>{path}</code>" in html, (method, path)
    assert "<script" not in html
    assert re.findall(r"""(?:src|href)=["']https?://""", html) == []


# --- schemathesis --------------------------------------------------------------------------------------

_AGGREGATOR_SIGNED = {"/new_order", "/tx_status", "/verify_account"}


def _body_bytes(body: Any) -> bytes:
    try:
        return canonical_json.go_dumps(body)  # what the Go aggregator sends and signs
    except canonical_json.CanonicalJsonError:
        return json.dumps(body, separators=(",", ":")).encode()


def before_call(context: Any, case: Any) -> None:
    """schemathesis hook: sign the generated request as its real caller would."""
    from psp.sandbox import SIGNATURE_HEADER, webhook_signature

    if isinstance(case.body, bytes) or case.body is NOT_SET:
        return
    path = case.operation.path
    headers = case.headers if case.headers is not None else {}
    if path == "/orders" and isinstance(case.body, dict):
        case.body["timestamp"] = int(time.time())
    body = _body_bytes(case.body)
    if path in _AGGREGATOR_SIGNED:
        headers["X-Request-Signature"] = signing.sign(settings.AGGREGATOR_SECRET_KEY, body)
    elif path == "/orders":
        signature = signing.sign(settings.AGGREGATOR_SECRET_KEY, body)
        headers["Authorization"] = f"HMAC {settings.AGGREGATOR_CLIENT_ID}:{signature}"
    elif path.startswith("/webhooks/") and (case.path_parameters or {}).get("psp") == "sandbox":
        headers[SIGNATURE_HEADER] = webhook_signature(body)
    case.headers = headers
    case.body = body


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """The real WSGI application, minus what Django's test client also removes: closing the database
    connection at the start and end of each request would end the test's transaction."""
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def signing_hook() -> Iterator[None]:
    schemathesis.hooks.register(before_call)
    try:
        yield
    finally:
        schemathesis.hooks.unregister(before_call)


def worker_heartbeat() -> None:
    from django.utils import timezone
    from django_q.models import Success

    from provision.models import Heartbeat

    Success.objects.create(
        id="f" * 32, name="sweep", func="orders.tasks.sweep", started=timezone.now(), stopped=timezone.now()
    )
    Heartbeat.beat("payout_lane")


@pytest.mark.django_db
def test_generated_requests_get_no_server_error_and_answers_that_match_the_schema(
    wsgi_app: Any, signing_hook: None, settings: Any
) -> None:
    settings.PSP = ["sandbox", "mtn_momo"]  # both webhook flavours: signed (sandbox) and path-carried
    settings.MTN_MOMO_SUBSCRIPTION_KEY = settings.MTN_MOMO_API_USER = settings.MTN_MOMO_API_KEY = "k"
    cache.clear()
    worker_heartbeat()  # worker and payout lane alive: /health/ready answers 200 (its 503 is documented)
    schema = schemathesis.from_dict(api_docs.schema(), app=wsgi_app)
    tested: list[str] = []
    failures: list[str] = []

    for result in schema.get_all_operations():
        operation = cast(Any, result).ok()

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call()
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.verbose_name}: {type(exc).__name__}: {exc}")
        tested.append(operation.verbose_name)

    assert len(tested) == len(EXPECTED_OPERATIONS)
    assert failures == [], "\n\n".join(failures)
