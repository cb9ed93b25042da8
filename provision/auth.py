"""How the aggregator authenticates to the node (DRF authentication classes).

``RequestSignatureAuthentication``  ``X-Request-Signature: <hex>`` = HMAC-SHA256(secret, raw body), no
    timestamp: how the Go aggregator calls /new_order, /tx_status and /verify_account. Only the raw body
    is checked (protocol A3, C.3: the aggregator sends the canonical bytes it signed), so a refused
    signature costs one HMAC per secret and no parsing.
``HmacAuthorizationAuthentication``  ``Authorization: HMAC <client_id>:<hex>`` with a numeric
    ``timestamp`` in the body: the seed flavour (POST /orders). The signature is checked first: over the
    raw body, then (the fallback the aggregator's middleware needs, A4.1/C.1) over the body's Go-canonical
    re-marshal, for bodies of at most CANONICAL_FALLBACK_MAX_BYTES nested at most
    CANONICAL_FALLBACK_MAX_DEPTH deep. Then the client id, then the timestamp: older than
    HMAC_TIMESTAMP_AGE or more than HMAC_FUTURE_SKEW ahead is refused. A signature is accepted once
    inside the window (the replay store is a database table with a unique constraint, so it holds across
    processes). Every refusal is the same 401 ``Authentication failed``: an unsigned caller learns
    nothing about the client id or the clock; the reason is logged (``auth.refused``).

Both accept the current and, while rotating, the previous secret, compared in constant time. No refusal
reveals the expected signature.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from provision import canonical_json, signing, untrusted_json
from provision.models import UsedSignature

logger = logging.getLogger(__name__)

_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{1,256}$")

#: The seed flavour's canonical fallback decodes and re-encodes the body the Go way: about 1 ms of CPU
#: per KB at worst (a body of small numbers). Past this size a signature that does not cover the raw
#: bytes is refused without it. A seed order with every field at its longest is under 6 KB.
CANONICAL_FALLBACK_MAX_BYTES: Final = 8 * 1024
#: A seed order nests 2 deep ({"recipient": {...}}).
CANONICAL_FALLBACK_MAX_DEPTH: Final = 8
AUTHENTICATION_FAILED: Final = "Authentication failed"


@dataclass(frozen=True)
class AggregatorPrincipal:
    """The authenticated caller: the aggregator holding our shared secret."""

    client_id: str
    scheme: str
    is_authenticated: bool = True

    def __str__(self) -> str:
        return f"aggregator:{self.client_id}"


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "Request body too large"
    default_code = "payload_too_large"


def _refuse(reason: str) -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(reason)


def _secrets() -> list[str]:
    return [s for s in (settings.AGGREGATOR_SECRET_KEY, settings.AGGREGATOR_PREVIOUS_SECRET_KEY) if s]


def raw_body(request: Request) -> bytes:
    try:
        return request.body  # the HttpRequest's (DRF's Request proxies its attributes)
    except RequestDataTooBig:
        raise PayloadTooLarge() from None


class RequestSignatureAuthentication(BaseAuthentication):
    header = "X-Request-Signature"

    def authenticate(self, request: Request) -> tuple[AggregatorPrincipal, str]:
        signature = request.headers.get(self.header, "").strip()
        if not signature:
            raise _refuse(f"Missing {self.header} header")
        if not _HEX_SIGNATURE.match(signature):
            raise _refuse(f"Invalid {self.header} header: expected a hex HMAC-SHA256")
        if not signing.verify(_secrets(), raw_body(request), signature):
            logger.warning(
                "auth.bad_signature", extra={"scheme": "x-request-signature", "path": request.path}
            )
            raise _refuse("Invalid signature")
        return AggregatorPrincipal(
            client_id=settings.AGGREGATOR_CLIENT_ID, scheme="x-request-signature"
        ), signature

    def authenticate_header(self, request: Request) -> str:
        return "HMAC-SHA256 header=X-Request-Signature"


class HmacAuthorizationAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AggregatorPrincipal, str]:
        scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
        client_id, sep, signature = rest.partition(":")
        if scheme != "HMAC" or not sep or not client_id or not _HEX_SIGNATURE.match(signature):
            raise _refuse_alike(request, "malformed_header")
        payload = _signed_payload(raw_body(request), signature)
        if payload is None:
            raise _refuse_alike(request, "bad_signature")
        if not hmac.compare_digest(client_id.encode(), settings.AGGREGATOR_CLIENT_ID.encode()):
            raise _refuse_alike(request, "unknown_client_id")
        try:
            timestamp = float(canonical_json.normalize_timestamp(payload)["timestamp"])
        except canonical_json.CanonicalJsonError:
            raise _refuse_alike(request, "invalid_timestamp") from None
        now = time.time()
        if now - int(timestamp) > settings.HMAC_TIMESTAMP_AGE:
            raise _refuse_alike(request, "timestamp_too_old")
        if timestamp - now > settings.HMAC_FUTURE_SKEW:
            raise _refuse_alike(request, "timestamp_in_the_future")
        if not self._remember(signature):
            raise _refuse_alike(request, "replayed_signature")
        return AggregatorPrincipal(client_id=client_id, scheme="hmac"), signature

    @staticmethod
    def _remember(signature: str) -> bool:
        """Record the signature; False if it was seen before inside the window (each request has its own
        timestamp, so a legitimate sender never repeats one)."""
        try:
            with transaction.atomic():
                UsedSignature.objects.create(signature=signature.lower(), seen_at=datetime.now(tz=UTC))
        except IntegrityError:
            logger.warning("auth.replay", extra={"signature_prefix": signature[:8]})
            return False
        return True

    def authenticate_header(self, request: Request) -> str:
        return "HMAC"


def _refuse_alike(request: Request, reason: str) -> exceptions.AuthenticationFailed:
    """The one answer to every seed-flavour authentication failure; only the log says which it was."""
    logger.warning("auth.refused", extra={"scheme": "hmac", "path": request.path, "reason": reason})
    return exceptions.AuthenticationFailed(AUTHENTICATION_FAILED)


def _signed_payload(body: bytes, signature: str) -> dict[str, Any] | None:
    """The decoded body when ``signature`` covers it, else None.

    First the raw bytes (one constant-time HMAC per secret, no parsing): what a Go-canonical signer sends
    and what upstream's middleware checks first. Only then the fallback the fork's middleware needs: it
    decodes the body the Go way, turns a string ``timestamp`` into a number (check 6 of A4.1) and signs the
    re-marshal, so a signer whose bytes are not canonical is accepted too, if the body is small and
    shallow enough that a garbage signature cannot buy much CPU.
    """
    secrets = _secrets()
    if signing.verify(secrets, body, signature):
        try:
            return canonical_json.go_loads(body, max_depth=untrusted_json.MAX_DEPTH)
        except canonical_json.CanonicalJsonError:
            return None  # signed, but not a JSON object: nothing to authenticate
    if len(body) > CANONICAL_FALLBACK_MAX_BYTES:
        return None
    try:
        payload = canonical_json.go_loads(body, max_depth=CANONICAL_FALLBACK_MAX_DEPTH)
        signed = canonical_json.normalize_timestamp(payload)
        canonical = canonical_json.go_dumps(signed)
    except canonical_json.CanonicalJsonError:
        return None
    return payload if signing.verify(secrets, canonical, signature) else None
