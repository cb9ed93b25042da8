"""Body size limits, security headers, CSRF on admin, admin login lock-out, and a clean deploy check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "correct horse battery staple 42"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/new_order", {"HTTP_X_REQUEST_SIGNATURE": "ab" * 32}),
        ("/tx_status", {"HTTP_X_REQUEST_SIGNATURE": "ab" * 32}),
        ("/orders", {"HTTP_AUTHORIZATION": "HMAC 8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b:" + "ab" * 32}),
        ("/webhooks/sandbox", {}),
        ("/webhooks/mtn_momo/SBX-REF-1", {}),
    ],
)
def test_body_over_max_body_bytes_is_413_envelope(
    client: Client, settings: Any, path: str, headers: dict[str, Any]
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.PSP = ["sandbox", "mtn_momo"]
    body = b'{"padding":"' + b"x" * 2048 + b'"}'

    response = client.generic("POST", path, data=body, content_type="application/json", **headers)

    assert response.status_code == 413
    assert response.json() == {
        "status": "error",
        "message": "Request body too large",
        "data": {"code": "payload_too_large"},
    }


def test_security_headers_are_on_every_answer(client: Client) -> None:
    response = client.get("/health")

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_https_only_redirects_to_https_but_not_the_probes(client: Client, settings: Any, db: None) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^health(/|$)", r"^metrics$"]
    settings.SECURE_HSTS_SECONDS = 31536000

    plain = Client().get("/info", HTTP_HOST="localhost")
    probe = Client().get("/health/live")
    secure = Client().get("/info", secure=True)

    assert (plain.status_code, plain["Location"]) == (301, "https://localhost/info")
    assert probe.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health", "/admin/login/", "/api/docs/"])
def test_a_content_security_policy_is_on_every_answer(client: Client, path: str) -> None:
    response = client.get(path)

    directives = {
        name: sources
        for name, _, sources in (
            part.strip().partition(" ") for part in response["Content-Security-Policy"].split(";")
        )
    }
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "upgrade-insecure-requests" not in directives


@pytest.mark.parametrize(("https_only", "upgrade"), [("true", True), ("false", False)])
def test_https_only_also_asks_browsers_to_upgrade_insecure_requests(https_only: str, upgrade: bool) -> None:
    from provision.testing import subprocess_env

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print('upgrade-insecure-requests' in settings.SECURE_CSP, settings.SECURE_HSTS_SECONDS)",
        ],
        cwd=ROOT,
        env=subprocess_env(HTTPS_ONLY=https_only),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout.split() == [str(upgrade), "31536000" if upgrade else "0"], result.stderr


@pytest.fixture
def staff(db: None) -> Any:
    return get_user_model().objects.create_user(
        username="ops", password=ADMIN_PASSWORD, is_staff=True, is_superuser=True
    )


def login(client: Client, password: str, ip: str = "10.0.0.7") -> Any:
    return client.post(
        "/admin/login/?next=/admin/", {"username": "ops", "password": password}, REMOTE_ADDR=ip
    )


def test_admin_login_form_refuses_a_post_without_csrf_token(staff: Any) -> None:
    client = Client(enforce_csrf_checks=True)

    response = login(client, ADMIN_PASSWORD)

    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_admin_login_with_csrf_token_works(staff: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")
    token = client.cookies["csrftoken"].value

    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ops", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token},
        REMOTE_ADDR="10.0.0.7",
    )

    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_admin_login_locks_out_user_and_ip_after_repeated_failures(staff: Any, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()

    failures = [login(client, "wrong password").status_code for _ in range(3)]
    locked = login(client, ADMIN_PASSWORD)
    elsewhere = login(Client(), ADMIN_PASSWORD, ip="10.0.0.8")

    assert failures == [200, 200, 429]
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert (elsewhere.status_code, elsewhere["Location"]) == (302, "/admin/")


def test_admin_login_locks_out_an_ip_spraying_one_password_over_many_user_names(
    staff: Any, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    settings.ADMIN_LOGIN_IP_FAILURE_LIMIT = 5
    client = Client()

    def try_user(username: str, password: str, ip: str = "10.0.0.7") -> int:
        return (
            Client()
            .post("/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=ip)
            .status_code
        )

    sprayed = [try_user(f"user{n}", "Summer2024!") for n in range(5)]
    locked = login(client, ADMIN_PASSWORD)
    elsewhere = login(Client(), ADMIN_PASSWORD, ip="10.0.0.8")

    assert sprayed == [200, 200, 200, 200, 429]
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert (elsewhere.status_code, elsewhere["Location"]) == (302, "/admin/")


def test_deploy_check_is_clean_with_production_settings() -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PROVISION_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        "DEBUG": "false",
        "SECRET": "k3J9-vQ2_xL7pR4mZ8wN1tY6bH5cF0gD-aS3eU9iO2yT7rE4wQ1zX8cV5bN6mL0kJ",
        "ALLOWED_HOSTS": "node.example.com",
        "HTTPS_ONLY": "true",
        "TRUST_X_FORWARDED_PROTO": "true",
        "METRICS_TOKEN": "Vq3xN8rT1mK6pB0sW4yH7cJ2dF5gL9zA-u",
        "SANDBOX_WEBHOOK_SECRET": "DuiqdS8ii0OE0EJhjbt8LmES0oo-foJshuLVAQE6X-c",
        "AGGREGATOR_CLIENT_ID": "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b",
        "AGGREGATOR_SECRET_KEY": "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw=",
        "DATABASE_URL": "sqlite:////tmp/provision-deploy-check.sqlite3",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (1 silenced)."
