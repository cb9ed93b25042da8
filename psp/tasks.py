"""django-q2 jobs of the PSP layer: thin wrappers over ``psp.services``; safe to run twice."""

from __future__ import annotations

from psp import services
from psp.models import Transfer, TransferStatus


def _follow_up(transfer: Transfer) -> None:
    from provision import scheduling

    transfer_pk = transfer.pk
    if transfer.status in (TransferStatus.CREATED, TransferStatus.PENDING) and transfer.next_check_at:
        scheduling.run_at(
            "psp.tasks.transfer_check",
            name=f"transfer_check:{transfer_pk}",
            when=transfer.next_check_at,
            transfer_pk=transfer_pk,
        )


def transfer_send(*, transfer_pk: int, transfer: Transfer | None = None) -> str:
    transfer = services.transfer_send(transfer_pk=transfer_pk, transfer=transfer)
    _follow_up(transfer)
    return transfer.status


def transfer_check(*, transfer_pk: int) -> str:
    transfer = services.transfer_check(transfer_pk=transfer_pk)
    _follow_up(transfer)
    return transfer.status


def webhook_process(*, event_pk: int) -> str:
    from psp import webhooks

    return webhooks.webhook_process(event_pk=event_pk)


def sandbox_webhook_send(*, payout_pk: int, attempt: int = 1) -> str:
    from psp import sandbox

    return sandbox.sandbox_webhook_deliver(payout_pk=payout_pk, attempt=attempt)
