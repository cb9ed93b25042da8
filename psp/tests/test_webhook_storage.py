"""What the node keeps of the webhooks it receives: every refused delivery counted, a bounded sample stored;
unsigned callbacks stored only about transfers of ours, a bounded number per transfer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer

from psp import registry
from psp.models import WebhookEvent
from psp.services import webhooks as webhook_services
from psp.tests.helpers import JSON, fixture, paying_transfer, run_lane

pytestmark = pytest.mark.django_db
METRICS_TOKEN = "Vq3xN8rT1mK6pB0sW4yH7cJ2dF5gL9zA"
MTN_REF = "c29dd208-1b11-40ce-abd0-12c5470becab"  # the MTN fixtures' externalId
MTN_STATUS_PATH = f"/disbursement/v1_0/transfer/{MTN_REF}"


def webhooks_counted(psp: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("provision_webhooks_total", {"psp": psp, "outcome": outcome}) or 0.0


def signature_failures_in_metrics(client: Client, settings: Any, psp: str) -> float:
    settings.METRICS_TOKEN = METRICS_TOKEN
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    return next(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "provision_webhook_signature_failures_total" and sample.labels == {"psp": psp}
    )


def forge(client: Client, body: bytes) -> Any:
    return client.generic(
        "POST", "/webhooks/sandbox", data=body, content_type=JSON, HTTP_X_SANDBOX_SIGNATURE="0" * 128
    )


def test_forged_webhooks_are_all_counted_but_only_a_sample_is_stored(client: Client, settings: Any) -> None:
    settings.WEBHOOK_REFUSED_SAMPLE_PER_HOUR = 3
    counted_before = webhooks_counted("sandbox", "invalid_signature")

    answers = {forge(client, json.dumps({"forged": n}).encode()).status_code for n in range(10)}

    assert answers == {401}
    assert WebhookEvent.objects.filter(psp="sandbox", signature_valid=False).count() == 3
    assert webhooks_counted("sandbox", "invalid_signature") - counted_before == 10
    assert signature_failures_in_metrics(client, settings, "sandbox") == 10


def test_the_refused_sample_is_per_psp_and_per_hour(client: Client, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.WEBHOOK_REFUSED_SAMPLE_PER_HOUR = 2
    now = timezone.now()
    for n in range(3):
        webhook_services.webhook_refusal_record(psp="sandbox", body=b"a%d" % n, now=now)
        webhook_services.webhook_refusal_record(psp="lenco", body=b"b%d" % n, now=now)
    for n in range(3):
        webhook_services.webhook_refusal_record(psp="sandbox", body=b"c%d" % n, now=now + timedelta(hours=1))

    stored = sorted(WebhookEvent.objects.values_list("psp", "body"))

    assert stored == [
        ("lenco", "b0"),
        ("lenco", "b1"),
        ("sandbox", "a0"),
        ("sandbox", "a1"),
        ("sandbox", "c0"),
        ("sandbox", "c1"),
    ]
    assert signature_failures_in_metrics(client, settings, "sandbox") == 6
    assert signature_failures_in_metrics(client, settings, "lenco") == 3


def test_a_stored_refused_body_is_truncated(client: Client) -> None:
    body = json.dumps({"padding": "x" * 20000}).encode()

    forge(client, body)

    stored = WebhookEvent.objects.get(signature_valid=False)
    assert stored.body == body.decode()[: webhook_services.REFUSED_BODY_CHARS]
    assert webhook_services.REFUSED_BODY_CHARS == 2048


def test_no_refused_delivery_is_stored_when_the_sample_is_zero(client: Client, settings: Any) -> None:
    settings.WEBHOOK_REFUSED_SAMPLE_PER_HOUR = 0

    forge(client, b'{"forged": true}')

    assert not WebhookEvent.objects.exists()
    assert signature_failures_in_metrics(client, settings, "sandbox") == 1


@pytest.fixture
def momo(settings: Any, httpserver: HTTPServer) -> Iterator[HTTPServer]:
    settings.PSP = ["mtn_momo"]
    settings.MTN_MOMO_BASE_URL = httpserver.url_for("/")
    settings.MTN_MOMO_SUBSCRIPTION_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    settings.MTN_MOMO_API_USER = "3f8b2c1a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    settings.MTN_MOMO_API_KEY = "b1c2d3e4f5a67890b1c2d3e4f5a67890"
    settings.MTN_MOMO_TARGET_ENVIRONMENT = "sandbox"
    settings.MTN_MOMO_CURRENCY = "EUR"
    settings.MTN_MOMO_CALLBACK_HOST = "https://node.example.com"
    settings.MTN_MOMO_TIMEOUT_SECONDS = Decimal("2")
    registry.adapter.cache_clear()
    httpserver.expect_request("/disbursement/token/", method="POST").respond_with_data(
        fixture("mtn_momo", "token.json"), content_type=JSON
    )
    yield httpserver
    registry.adapter.cache_clear()


def mtn_callback(client: Client, body: bytes, reference: str = MTN_REF) -> Any:
    return client.generic("PUT", f"/webhooks/mtn_momo/{reference}", data=body, content_type=JSON)


def unique_callbacks(count: int) -> list[bytes]:
    template = json.loads(fixture("mtn_momo", "callback_successful.json"))
    return [json.dumps({**template, "payerMessage": f"callback {n}"}).encode() for n in range(count)]


def test_many_different_mtn_callbacks_for_one_transfer_cause_one_status_read(
    momo: HTTPServer, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    paying_transfer(psp="mtn_momo", reference=MTN_REF)
    momo.expect_request(MTN_STATUS_PATH, method="GET").respond_with_data(
        fixture("mtn_momo", "transfer_successful.json"), content_type=JSON
    )

    with django_capture_on_commit_callbacks(execute=True):
        statuses = {mtn_callback(client, body).status_code for body in unique_callbacks(8)}
    run_lane()

    assert statuses == {200}
    assert [request.path for request, _ in momo.log].count(MTN_STATUS_PATH) == 1


def test_unsigned_callbacks_about_no_transfer_of_ours_are_counted_not_stored(
    momo: HTTPServer, client: Client
) -> None:
    stranger = "0b9d8c7e-6f5a-4b3c-9d1e-0f9a8b7c6d5e"
    counted_before = webhooks_counted("mtn_momo", "unknown_reference")

    answers = [mtn_callback(client, body, reference=stranger) for body in unique_callbacks(5)]

    assert {(a.status_code, a.json()["message"]) for a in answers} == {(200, "Received")}
    assert not WebhookEvent.objects.exists()
    assert webhooks_counted("mtn_momo", "unknown_reference") - counted_before == 5
    assert momo.log == []


def test_unsigned_callbacks_about_one_transfer_are_stored_up_to_a_bound(
    momo: HTTPServer, client: Client
) -> None:
    paying_transfer(psp="mtn_momo", reference=MTN_REF)
    bound = webhook_services.UNSIGNED_EVENTS_PER_REFERENCE
    counted_before = webhooks_counted("mtn_momo", "over_limit")

    answers = [mtn_callback(client, body).json()["message"] for body in unique_callbacks(bound + 4)]

    assert answers == ["Received"] * (bound + 4)
    assert WebhookEvent.objects.filter(psp="mtn_momo", reference=MTN_REF).count() == bound
    assert webhooks_counted("mtn_momo", "over_limit") - counted_before == 4


def test_an_unsigned_callback_gets_the_same_answer_whether_its_reference_is_ours_or_not(
    momo: HTTPServer, client: Client
) -> None:
    paying_transfer(psp="mtn_momo", reference=MTN_REF)
    body = fixture("mtn_momo", "callback_successful.json")

    ours = mtn_callback(client, body)
    stranger = mtn_callback(client, body, reference="0b9d8c7e-6f5a-4b3c-9d1e-0f9a8b7c6d5e")

    assert (ours.status_code, ours.json()) == (stranger.status_code, stranger.json())
