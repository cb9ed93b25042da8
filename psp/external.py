"""Payouts made outside the PSP adapters (a bank file uploaded by staff): the Transfer row only.

The row keeps the one-live-transfer-per-order constraint true for bank-file payouts too, so an order
exported to a bank file cannot also be paid through a PSP. It is never polled (no adapter): its outcome
arrives by a pain.002 status report, applied with ``orders.services.order_apply_psp_answer``.
"""

from __future__ import annotations

from django.utils import timezone

from orders.models import Order
from provision.logging import mask_account
from psp import references
from psp.models import Transfer, TransferStatus

BANK_FILE = "bank_file"
REFERENCE_MAX_LENGTH = 35  # pain.001 InstrId / EndToEndId are ISO 20022 Max35Text


def make_reference(*, order_key: str, attempt: int) -> str:
    """The reference of a bank-file payout attempt, written whole as InstrId and EndToEndId in the pain.001
    and found again by the pain.002 import: the order UUID's 32 hex digits + ``-<attempt>``, or a tagged
    hash of any other order id (``psp.references``), in ``[0-9a-z-]`` and at most 35 characters."""
    return references.payout_reference(
        order_id=order_key, attempt=attempt, prefix="", max_length=REFERENCE_MAX_LENGTH
    )


def transfer_start_external(*, order: Order, psp: str, message_id: str) -> Transfer:
    """Write the external transfer for a locked order moving to ``paying``. Caller holds the order lock."""
    attempt = order.transfers.count() + 1
    return Transfer.objects.create(
        order=order,
        psp=psp,
        attempt=attempt,
        reference=make_reference(order_key=order.order_id, attempt=attempt),
        status=TransferStatus.PENDING,
        amount=order.amount,
        currency=order.currency,
        account_masked=mask_account(order.account_identifier),
        sends=1,
        history=[{"at": timezone.now().isoformat(), "event": "bank_file", "message_id": message_id}],
    )
