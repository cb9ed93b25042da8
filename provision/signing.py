"""HMAC-SHA256 signatures of the aggregator protocol (shared/protocol/aggregator.md, A1, A3, A4.1, C).

* The key is the secret's text as UTF-8 bytes (never base64-decoded).
* The signature is the lowercase hex digest. Comparison is exact, as the
  aggregator's ``hmac.Equal`` on the hex text: an upper-case signature does
  not match.
* Node -> aggregator: sign the Go-canonical bytes of the payload *including*
  the integer ``timestamp`` and send exactly those bytes (:func:`signed_body`).
* Aggregator -> node: ``X-Request-Signature`` covers the raw body (which the
  Go aggregator already writes canonically); the node checks it with
  :func:`verify` on the raw bytes alone (``provision.auth``).
  :func:`verify_body` also accepts a signature over the canonical re-marshal
  of the body, which costs a full decode and encode whenever the raw form
  fails: never call it on unauthenticated input without a size and depth cap
  (``provision.auth`` has the capped form the seed flavour needs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from provision.canonical_json import CanonicalJsonError, go_dumps, go_loads, normalize_timestamp

__all__ = ["sign", "signed_body", "verify", "verify_body"]


def sign(secret: str, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` keyed with ``secret.encode("utf-8")``."""
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret_candidates: Sequence[str], message: bytes, signature: str) -> bool:
    """True if ``signature`` is the HMAC of ``message`` under any of the candidate secrets.

    Pass the current secret and, during a rotation, the previous one. Every
    candidate is checked with :func:`hmac.compare_digest` and the loop never
    exits early, so the timing does not tell which candidate matched. Empty
    candidates are ignored (an unset secret must not become a known key).
    """
    if isinstance(secret_candidates, str):
        raise TypeError("secret_candidates must be a sequence of secrets, not a single str")
    given = signature.encode("utf-8", "surrogatepass")
    matched = False
    for secret in secret_candidates:
        if not secret:
            continue
        expected = sign(secret, message).encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    return matched


def signed_body(secret: str, payload: Mapping[str, Any], *, timestamp: int) -> tuple[bytes, str]:
    """The request body for a node -> aggregator call and its signature.

    The body is the Go-canonical encoding of ``payload`` plus
    ``{"timestamp": timestamp}``; send exactly these bytes (that satisfies
    both the fork's re-marshal check and upstream's raw-body check). Use a
    fresh ``timestamp`` (unix seconds) for every attempt. Raises
    :class:`~provision.canonical_json.CanonicalJsonError` for values Go would
    sign differently (floats are fine, but prefer strings for money).
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be an int (unix seconds), not {type(timestamp).__name__}")
    if timestamp == 0:
        raise ValueError("timestamp must not be 0 (the aggregator refuses it)")
    if "timestamp" in payload:
        raise ValueError("payload must not contain 'timestamp'; pass it as the timestamp argument")
    body = go_dumps({**payload, "timestamp": timestamp})
    return body, sign(secret, body)


def verify_body(
    secret_candidates: Sequence[str],
    raw_body: bytes,
    signature: str,
    *,
    coerce_timestamp: bool = False,
) -> bool:
    """True if ``signature`` covers the raw body bytes or their Go-canonical re-marshal.

    The raw-bytes form is what the aggregator signs on ``/new_order`` and
    ``/tx_status`` (A3); the canonical form is what a Go-style signer of a
    non-canonical body (e.g. pretty-printed) signs (C.1, C.3). A body that is
    not a JSON object can only match in its raw form.

    ``coerce_timestamp=True`` mimics the aggregator's middleware for bodies
    that carry a ``timestamp`` (seed ``POST /orders``): a string timestamp is
    turned into a number before re-marshalling (check 6 of A4.1).
    """
    if verify(secret_candidates, raw_body, signature):
        return True  # the usual case: the aggregator signs the bytes it sends
    try:
        payload: Mapping[str, Any] = go_loads(raw_body)
        if coerce_timestamp and isinstance(payload.get("timestamp"), str):
            payload = normalize_timestamp(payload)
        canonical = go_dumps(payload)
    except CanonicalJsonError:
        canonical = None
    return canonical is not None and verify(secret_candidates, canonical, signature)
