"""Helpers for tests: sign requests the way the Go aggregator does."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
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
