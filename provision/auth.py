"""How the aggregator authenticates to the node (DRF authentication classes).

``RequestSignatureAuthentication``  ``X-Request-Signature: <hex>`` = HMAC-SHA256(secret, raw body), no
    timestamp: how the Go aggregator calls /new_order, /tx_status and /verify_account. A signature over
    the canonical re-marshal of the body is accepted too (protocol C.3).
``HmacAuthorizationAuthentication``  ``Authorization: HMAC <client_id>:<hex>`` with a numeric
    ``timestamp`` in the body, verified over the Go-canonical form: the seed flavour (POST /orders).
    Timestamps older than HMAC_TIMESTAMP_AGE or more than HMAC_FUTURE_SKEW ahead are refused, and a
    signature is accepted once inside the window (the replay store is a database table with a unique
    constraint, so it holds across processes).

Both accept the current and, while rotating, the previous secret. Every refusal is a 401 envelope whose
message never reveals the expected signature.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from provision import canonical_json, signing
from provision.models import UsedSignature

logger = logging.getLogger(__name__)

_HEX_SIGNATURE = re.compile(r"^[0-9a-fA-F]{1,256}$")


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
        return request._request.body
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
        body = raw_body(request)
        if not signing.verify_body(_secrets(), body, signature):
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
        header = request.headers.get("Authorization", "")
        if not header:
            raise _refuse("Missing Authorization header")
        scheme, _, rest = header.partition(" ")
        if scheme != "HMAC" or not rest:
            raise _refuse("Invalid Authorization header: expected HMAC <client_id>:<signature>")
        client_id, sep, signature = rest.partition(":")
        if not sep or not client_id or not signature or not _HEX_SIGNATURE.match(signature):
            raise _refuse("Invalid Authorization header format: expected HMAC <client_id>:<signature>")
        body = raw_body(request)
        try:
            payload = canonical_json.go_loads(body)
        except canonical_json.CanonicalJsonError:
            raise _refuse("Invalid payload format: the body must be a JSON object") from None
        try:
            payload = canonical_json.normalize_timestamp(payload)
        except canonical_json.CanonicalJsonError:
            raise _refuse("Missing or invalid timestamp in payload") from None
        now = time.time()
        timestamp = float(payload["timestamp"])
        if now - int(timestamp) > settings.HMAC_TIMESTAMP_AGE:
            raise _refuse("Invalid timestamp: too old")
        if timestamp - now > settings.HMAC_FUTURE_SKEW:
            raise _refuse("Invalid timestamp: in the future")
        if not hmac.compare_digest(client_id.encode(), settings.AGGREGATOR_CLIENT_ID.encode()):
            raise _refuse("Unknown client id")
        canonical = canonical_json.go_dumps(payload)
        if not (
            signing.verify(_secrets(), canonical, signature) or signing.verify(_secrets(), body, signature)
        ):
            logger.warning("auth.bad_signature", extra={"scheme": "hmac", "path": request.path})
            raise _refuse("Invalid HMAC signature")
        self._remember(signature)
        return AggregatorPrincipal(client_id=client_id, scheme="hmac"), signature

    @staticmethod
    def _remember(signature: str) -> None:
        """Refuse a signature seen before inside the window (each request has its own timestamp)."""
        try:
            with transaction.atomic():
                UsedSignature.objects.create(signature=signature.lower(), seen_at=datetime.now(tz=UTC))
        except IntegrityError:
            logger.warning("auth.replay", extra={"signature_prefix": signature[:8]})
            raise _refuse("Replayed request: this signature was already used") from None

    def authenticate_header(self, request: Request) -> str:
        return "HMAC"
