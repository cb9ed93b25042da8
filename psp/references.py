"""Client references of payout attempts: a collision-free function of the whole order id and the attempt.

A reference is the PSP's idempotency key and half of Transfer's unique (psp, reference), so two distinct
(order id, attempt) pairs must never get the same one: if they did, the second order's transfer would be
refused by the database on every retry and that order would never pay. ``payout_reference`` writes one of
two forms, told apart by the first character after the prefix:

* **readable** ``<prefix><32 hex digits>-<attempt>``, only for an order id that is a UUID in canonical form
  (lowercase and dashed, ``str(uuid.UUID(order_id)) == order_id``, which is what the aggregator sends).
  Exactly injective: a canonical UUID and its 32 hex digits determine each other, and the attempt is what
  follows the last dash. e.g. ``pn-559028af6e154b21bab5052a248db249-1``.
* **hashed** ``<prefix>h<first 26 hex digits of SHA-256(order id)>-<attempt>`` for every other id (another
  case, no dashes, braces, any other text), and for a canonical UUID whose readable form would not fit.
  ``h`` is not a hex digit, so the two forms never meet; two hashed references meet only if two order ids'
  SHA-256 agree on their first 104 bits.

Both use only ``[0-9a-z-]`` after the prefix and are at most ``max_length`` long (the PSP's limit).

MTN MoMo is the one adapter that does not use this: its reference must be a UUID v4, so it hashes
``f"{order_id}:{attempt}"`` (injective before hashing: the attempt is what follows the last colon) into
122 bits with ``uuid5`` (``psp.clients.mtn_momo``).
"""

from __future__ import annotations

import hashlib
import uuid

HASH_TAG = "h"
DIGEST_HEX_DIGITS = 26  # 104 bits of SHA-256
MAX_ATTEMPT = 32767  # Transfer.attempt is a PositiveSmallIntegerField


def payout_reference(*, order_id: str, attempt: int, prefix: str, max_length: int) -> str:
    """The reference of ``order_id``'s payout attempt ``attempt``, at most ``max_length`` characters.

    Raises ValueError for an attempt outside 0..MAX_ATTEMPT or a ``max_length`` too short for the hashed
    form (a programming error, never a property of the order).
    """
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be between 0 and {MAX_ATTEMPT}")
    suffix = f"-{attempt}"
    uuid_hex = _canonical_uuid_hex(order_id)
    if uuid_hex is not None and len(prefix) + len(uuid_hex) + len(suffix) <= max_length:
        return f"{prefix}{uuid_hex}{suffix}"
    digest = hashlib.sha256(order_id.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_HEX_DIGITS]
    reference = f"{prefix}{HASH_TAG}{digest}{suffix}"
    if len(reference) > max_length:
        raise ValueError(f"a {max_length}-character reference has no room for {reference!r}")
    return reference


def _canonical_uuid_hex(order_id: str) -> str | None:
    """The 32 hex digits of ``order_id`` when it is a UUID written canonically, else None."""
    try:
        parsed = uuid.UUID(order_id)
    except ValueError:
        return None
    return parsed.hex if str(parsed) == order_id else None
