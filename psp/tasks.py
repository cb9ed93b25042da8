"""django-q2 jobs of the PSP layer: thin wrappers, safe to run twice."""

from __future__ import annotations

from psp import sandbox, webhooks
from psp.services import webhooks as webhook_services


def webhook_process(*, event_pk: int) -> str:
    return webhooks.webhook_process(event_pk=event_pk)


def mpesa_callback_process(*, event_pk: int) -> str:
    return webhooks.mpesa_callback_process(event_pk=event_pk)


def sandbox_webhook_send(*, payout_pk: int, attempt: int = 1) -> str:
    return sandbox.sandbox_webhook_deliver(payout_pk=payout_pk, attempt=attempt)


def webhook_events_purge() -> int:
    """Hourly: delete webhook rows past WEBHOOK_RETENTION_DAYS (refused: WEBHOOK_REFUSED_RETENTION_DAYS)."""
    return webhook_services.webhook_events_purge()
