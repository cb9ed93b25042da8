"""M-Pesa Daraja's state in the node's database: the one shared OAuth token, and the asynchronous requests.

Why the database for the token, not the cache: Daraja invalidates an app's previous token whenever it
issues a new one, so every web, worker and payout-lane process, on every replica, must use the same
token. Django's cache is shared only when ops configure a shared backend (``CACHE_URL`` defaults to a
per-process local-memory cache), while the database is shared by construction. So the token is a row
(``DarajaToken``).

Refreshing it without holding a lock over HTTP: a process that finds the token due claims the refresh
with one conditional UPDATE (a lease in ``refreshing_until``, and the generation it saw); only the winner
calls Daraja, with no transaction open (on SQLite an open write transaction would stop every writer of
the node for the length of the call). Meanwhile the others keep using the current token while it has
not expired, or wait (bounded) for the winner's new generation. A token Daraja refuses is expired only
if it is still the current generation, so a 401 in one process after another refreshed costs no new
token.

Requests (``DarajaRequest``): a payment's row is written before its POST (its OriginatorConversationID
persisted first), a query's row before its POST too, its random ``key`` in the query's callback URLs; the
callback that answers a query is recorded on that row once. The adapter (``psp.clients.mpesa``) reads
these rows to answer ``get_payout`` and ``get_balances``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from psp.models import DarajaAnswer, DarajaRequest, DarajaRequestKind, DarajaSend, DarajaToken

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 50  # rows of one reference read at a time (a payout has a handful)


@dataclass(frozen=True)
class Token:
    value: str
    generation: int
    refresh_at: datetime
    expires_at: datetime


def app_id(*, base_url: str, consumer_key: str) -> str:
    """The token row's key: one token per Daraja app (the consumer key itself is never stored)."""
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{consumer_key}".encode()).hexdigest()


class DarajaStore:
    """The database side of one Daraja app. Every method is one short statement or two, in autocommit."""

    def __init__(self, *, app: str) -> None:
        self.app = app

    # --- the token ---------------------------------------------------------------------------------------

    def token(self) -> Token | None:
        row = DarajaToken.objects.filter(app=self.app).first()
        if row is None or not row.access_token or row.refresh_at is None or row.expires_at is None:
            return None
        return Token(row.access_token, row.generation, row.refresh_at, row.expires_at)

    def token_generation(self) -> int:
        """The current generation (0 before the first token), creating the app's row when missing."""
        row, _created = DarajaToken.objects.get_or_create(app=self.app)
        return row.generation

    def token_claim_refresh(self, *, generation: int, lease: timedelta) -> bool:
        """Claim the refresh of token ``generation`` for ``lease``; False when another process holds it or
        has already replaced that generation."""
        now = timezone.now()
        DarajaToken.objects.get_or_create(app=self.app)
        return bool(
            DarajaToken.objects.filter(app=self.app, generation=generation)
            .filter(Q(refreshing_until__isnull=True) | Q(refreshing_until__lt=now))
            .update(refreshing_until=now + lease, updated_at=now)
        )

    def token_save(self, *, value: str, lifetime: timedelta, margin: timedelta) -> Token:
        """Store a token Daraja just issued (the refresh's owner only) and release the lease."""
        now = timezone.now()
        DarajaToken.objects.filter(app=self.app).update(
            access_token=value,
            generation=F("generation") + 1,
            refresh_at=now + lifetime - margin,
            expires_at=now + lifetime,
            refreshing_until=None,
            updated_at=now,
        )
        token = self.token()
        if token is None:  # pragma: no cover - the row was just written
            raise RuntimeError("the Daraja token row vanished")
        return token

    def token_release(self) -> None:
        """Give up a claimed refresh (the token call failed): another process may try at once."""
        DarajaToken.objects.filter(app=self.app).update(refreshing_until=None, updated_at=timezone.now())

    def token_expire(self, *, generation: int) -> bool:
        """Daraja refused token ``generation``: make it due for refresh, unless it was already replaced."""
        now = timezone.now()
        return bool(
            DarajaToken.objects.filter(app=self.app, generation=generation).update(
                refresh_at=now, expires_at=now, updated_at=now
            )
        )

    # --- requests ----------------------------------------------------------------------------------------

    def request_sent(
        self, *, kind: DarajaRequestKind, reference: str = "", amount: Decimal | None = None
    ) -> str:
        """Record a request about to be POSTed; returns its key (random, for the callback URLs)."""
        key = secrets.token_hex(16)
        DarajaRequest.objects.create(
            kind=kind, key=key, reference=reference, amount=amount, sent_at=timezone.now()
        )
        return key

    def request_answered_http(self, *, key: str, send: DarajaSend, conversation_id: str = "") -> None:
        """Record Daraja's synchronous answer to a request. A refused query is closed at once (``UNSENT``): it
        will never be answered, and the next read may ask again. A query that got no answer (timeout) stays
        open: Daraja may still have queued it, and its late answer is still taken."""
        fields: dict[str, Any] = {"send": send}
        if conversation_id:
            fields["conversation_id"] = conversation_id[:64]
        if (
            send == DarajaSend.REFUSED
            and not DarajaRequest.objects.filter(key=key, kind=DarajaRequestKind.PAYMENT).exists()
        ):
            fields |= {"answered_at": timezone.now(), "answer": DarajaAnswer.UNSENT}
        DarajaRequest.objects.filter(key=key).update(**fields)

    def history(self, *, reference: str) -> list[DarajaRequest]:
        """The payments and status queries of ``reference``, newest first."""
        return list(
            DarajaRequest.objects.filter(
                reference=reference, kind__in=(DarajaRequestKind.PAYMENT, DarajaRequestKind.STATUS)
            ).order_by("-sent_at", "-pk")[:HISTORY_LIMIT]
        )

    def request(self, *, key: str) -> DarajaRequest | None:
        return DarajaRequest.objects.filter(key=key).first()

    def payment_hinted(self, *, reference: str) -> bool:
        """A payment's Result or QueueTimeOut callback arrived: the next read asks Daraja again at once.
        False when the node never sent a payment with this reference."""
        return bool(
            DarajaRequest.objects.filter(kind=DarajaRequestKind.PAYMENT, reference=reference).update(
                hinted_at=timezone.now()
            )
        )

    def answer_read(self, *, key: str) -> bool:
        """Mark a query's answer as used by a read (once: False when a read had already used it)."""
        return bool(
            DarajaRequest.objects.filter(key=key, answered_at__isnull=False, read_at__isnull=True).update(
                read_at=timezone.now()
            )
        )

    def query_answer(self, *, key: str, kind: DarajaRequestKind, answer: DarajaAnswer, **fields: Any) -> bool:
        """Record the answer of query ``key`` (once: False when it was already answered or is unknown)."""
        return bool(
            DarajaRequest.objects.filter(key=key, kind=kind, answered_at__isnull=True).update(
                answered_at=timezone.now(), answer=answer, **fields
            )
        )
