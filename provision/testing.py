"""Helpers for tests: sign requests the way the Go aggregator does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client

from provision import canonical_json, signing


def post_signed_raw(client: Client, path: str, payload: dict[str, Any], *, secret: str | None = None) -> Any:
    """POST like the Go aggregator: canonical body, X-Request-Signature over it, no Content-Type."""
    body = canonical_json.go_dumps(payload)
    signature = signing.sign(secret or settings.AGGREGATOR_SECRET_KEY, body)
    return client.generic("POST", path, data=body, content_type="", HTTP_X_REQUEST_SIGNATURE=signature)


def post_hmac(
    client: Client,
    path: str,
    payload: dict[str, Any],
    *,
    secret: str | None = None,
    client_id: str | None = None,
    timestamp: float | None = None,
) -> Any:
    """POST like the seed flavour: timestamp in the body, Authorization: HMAC <client_id>:<sig>."""
    body, signature = signing.signed_body(
        secret or settings.AGGREGATOR_SECRET_KEY, payload, timestamp=int(timestamp or time.time())
    )
    header = f"HMAC {client_id or settings.AGGREGATOR_CLIENT_ID}:{signature}"
    return client.generic("POST", path, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)


def run_together(calls: list[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Start every call at the same moment, each in its own thread with its own database connection.

    Returns each call's result, or the exception it raised, in order.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def runner(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the caller inspects what each call got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment of a child Python process with the production settings and random-looking test
    secrets (plus ``overrides``), for tests of what a freshly started process does."""
    import os

    return {
        "PATH": os.environ.get("PATH", ""),
        "PROVISION_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        "SECRET": "biCQWzgsHgtyWftEubOR30K6f2O_AiJkDyq92shsLJnZuHDzLZciLqyT3BzqT1VTwE0",
        "AGGREGATOR_CLIENT_ID": "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b",
        "AGGREGATOR_SECRET_KEY": "QaxTNDq0V-J-gBs-qw2GKUWII01jlhzPuebREKiW64o",
        "SANDBOX_WEBHOOK_SECRET": "DuiqdS8ii0OE0EJhjbt8LmES0oo-foJshuLVAQE6X-c",
        "DATABASE_URL": "sqlite:////tmp/provision-subprocess-test.sqlite3",
        **overrides,
    }
