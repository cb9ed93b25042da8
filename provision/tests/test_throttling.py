"""Rate limits: per aggregator client id or client IP, per endpoint scope, 429 with Retry-After."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client, RequestFactory

from provision import canonical_json, signing, testing
from provision.throttle_rates import parse_rate, parse_rates
from provision.throttling import client_ip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def tx_status(client: Client, *, secret: str | None = None, **extra: Any) -> Any:
    body = canonical_json.go_dumps({"orderId": "unknown-order-1"})
    signature = signing.sign(secret or django_settings.AGGREGATOR_SECRET_KEY, body)
    return client.generic(
        "POST", "/tx_status", data=body, content_type="", HTTP_X_REQUEST_SIGNATURE=signature, **extra
    )


@pytest.mark.django_db
def test_aggregator_over_its_scope_rate_gets_429_envelope_with_retry_after(
    client: Client, settings: Any
) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "tx_status": "2/min"}

    answers = [tx_status(client) for _ in range(3)]

    assert [a.status_code for a in answers] == [404, 404, 429]
    refused = answers[2]
    assert 1 <= int(refused["Retry-After"]) <= 60
    body = refused.json()
    assert body["status"] == "error"
    assert body["data"] == {"code": "throttled", "retryAfter": int(refused["Retry-After"])}
    assert body["message"].startswith("Request was throttled. Expected available in ")


@pytest.mark.django_db
def test_scopes_are_counted_separately(client: Client, settings: Any) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "tx_status": "1/min"}

    first = tx_status(client)
    offer = testing.post_signed_raw(
        client,
        "/new_order",
        {"amount": "3750", "currency": "NGN", "institution": "ABNGNGLA", "orderId": "throttle-order-1"},
    )
    second = tx_status(client)

    assert (first.status_code, offer.status_code, second.status_code) == (404, 200, 429)


@pytest.mark.django_db
def test_signed_requests_are_counted_per_client_id_not_per_ip(client: Client, settings: Any) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "tx_status": "1/min"}

    first = tx_status(client, REMOTE_ADDR="10.0.0.1")
    second = tx_status(client, REMOTE_ADDR="10.0.0.2")

    assert (first.status_code, second.status_code) == (404, 429)


@pytest.mark.django_db
def test_unauthenticated_endpoints_are_counted_per_client_ip(client: Client, settings: Any) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "public": "1/min"}

    answers = [client.get("/info", REMOTE_ADDR=ip).status_code for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.1")]

    assert answers == [200, 200, 429]


def test_a_bad_signature_is_refused_before_it_counts(client: Client, settings: Any, db: None) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "tx_status": "1/min"}

    forged = tx_status(client, secret="not-the-secret")
    genuine = tx_status(client)

    assert (forged.status_code, genuine.status_code) == (401, 404)


@pytest.mark.django_db
def test_off_disables_a_scope(client: Client, settings: Any) -> None:
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "health": "off", "default": "1/min"}

    assert [client.get("/health").status_code for _ in range(5)] == [200] * 5


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(settings: Any) -> None:
    request = RequestFactory().get("/info", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="1.1.1.1, 2.2.2.2")

    settings.NUM_PROXIES = 0
    direct = client_ip(request)
    settings.NUM_PROXIES = 1
    behind_one = client_ip(request)
    settings.NUM_PROXIES = 2
    behind_two = client_ip(request)

    assert (direct, behind_one, behind_two) == ("10.9.9.9", "2.2.2.2", "1.1.1.1")


def test_default_rates_never_fall_below_the_aggregators_own_traffic() -> None:
    rates = {scope: parse_rate(rate) for scope, rate in django_settings.DEFAULT_THROTTLE_RATES.items()}

    aggregator_ceiling_per_minute = 500 * 60  # its own limit: 500 req/s per API key
    for scope in ("new_order", "orders", "tx_status"):
        limit, period = rates[scope]  # type: ignore[misc]
        assert limit * 60 / period >= aggregator_ceiling_per_minute, scope
    limit, period = rates["tx_status"]  # type: ignore[misc]
    assert limit * 32 / period >= 16000  # one /tx_status per processing order every 32 s
    assert django_settings.THROTTLE_SCOPES["new-order"] == "new_order"


@pytest.mark.django_db
def test_default_rates_let_a_burst_of_aggregator_traffic_through(client: Client) -> None:
    statuses = {tx_status(client).status_code for _ in range(300)}

    assert statuses == {404}


def test_rate_strings_parse_or_fail_clearly() -> None:
    assert parse_rate("600/min") == (600, 60)
    assert parse_rate("5/s") == (5, 1)
    assert parse_rate("100/hour") == (100, 3600)
    assert parse_rate("off") is None
    assert parse_rates("new_order=10/s, webhooks=off") == {"new_order": "10/s", "webhooks": "off"}
    for bad in ("ten/min", "5/week", "0/min", "600"):
        with pytest.raises(ValueError, match=r"rate|positive|invalid"):
            parse_rate(bad)


def test_malformed_throttle_rates_stop_the_boot_naming_the_variable() -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PROVISION_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        "SECRET": "biCQWzgsHgtyWftEubOR30K6f2O_AiJkDyq92shsLJnZuHDzLZciLqyT3BzqT1VTwE0",
        "AGGREGATOR_CLIENT_ID": "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b",
        "AGGREGATOR_SECRET_KEY": "QaxTNDq0V-J-gBs-qw2GKUWII01jlhzPuebREKiW64o",
        "SANDBOX_WEBHOOK_SECRET": "DuiqdS8ii0OE0EJhjbt8LmES0oo-foJshuLVAQE6X-c",
        "DATABASE_URL": "sqlite:////tmp/provision-throttle-test.sqlite3",
        "THROTTLE_RATES": "new_order=lots",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.strip().startswith("configuration error: THROTTLE_RATES='new_order=lots' is invalid")


SCRAPE_TOKEN = "Hs7kP2vQ9xL4mR8nT1bW6cY3dF0gJ5zA"


@pytest.mark.django_db
def test_metrics_has_its_own_scope_counted_per_client_ip(client: Client, settings: Any) -> None:
    settings.METRICS_ALLOW_UNAUTHENTICATED = "loopback"
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "metrics": "2/min", "default": "off"}

    answers = [client.get("/metrics", REMOTE_ADDR="127.0.0.1") for _ in range(3)]
    elsewhere = client.get("/metrics", REMOTE_ADDR="::1")

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["data"]["code"] == "throttled"
    assert 1 <= int(answers[2]["Retry-After"]) <= 60
    assert elsewhere.status_code == 200


@pytest.mark.django_db
def test_a_scraper_with_the_token_is_counted_apart_from_anonymous_clients(
    client: Client, settings: Any
) -> None:
    settings.METRICS_TOKEN = SCRAPE_TOKEN
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "metrics": "2/min"}

    anonymous = [client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code for _ in range(3)]
    scraper = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")

    assert anonymous == [401, 401, 429]
    assert scraper.status_code == 200


@pytest.mark.django_db
def test_api_schema_and_docs_share_a_scope_counted_per_client_ip(client: Client, settings: Any) -> None:
    settings.THROTTLE_RATES = {
        **settings.THROTTLE_RATES,
        "api_docs": "2/min",
        "public": "off",
        "default": "off",
    }

    answers = [client.get(path).status_code for path in ("/api/schema/", "/api/docs/", "/api/docs/")]
    schema_again = client.get("/api/schema/")

    assert answers == [200, 200, 429]
    assert schema_again.status_code == 429
    assert client.get("/api/docs/", REMOTE_ADDR="10.0.0.9").status_code == 200


def test_every_url_the_node_serves_outside_admin_has_a_throttle_scope() -> None:
    from django.urls import get_resolver

    names = {
        pattern.name
        for entry in get_resolver().url_patterns
        for pattern in getattr(entry, "url_patterns", [entry])
        if getattr(pattern, "name", None) and not str(entry.pattern).startswith("admin/")
    }

    assert sorted(names - set(django_settings.THROTTLE_SCOPES)) == []
    assert {django_settings.THROTTLE_SCOPES[name] for name in ("metrics", "api-docs", "api-schema")} == {
        "metrics",
        "api_docs",
    }
    for scope in set(django_settings.THROTTLE_SCOPES.values()):
        assert parse_rate(django_settings.DEFAULT_THROTTLE_RATES[scope]) is not None, scope
