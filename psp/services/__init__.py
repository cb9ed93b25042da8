"""The PSP layer's services: routing, transfers and the PSP calls about them, reads that move no money.

A lower layer than the order services: nothing here imports ``orders.services``. Calls about a transfer
return what the PSP answered (``PspAnswer``), and recording an answer returns what the order must do
(``TransferChange``); ``orders`` applies it.
"""

from psp.services.accounts import NoResolver, account_resolve, payout_name_check, psp_balances_read
from psp.services.routing import (
    NEEDS_MAPPING,
    NoPspAvailable,
    psp_amount_refusal,
    psp_candidates,
    psp_institution_code,
    psp_payable,
    psp_pick,
    route,
)
from psp.services.transfers import (
    CLAIM_LEASE,
    PAYOUT_REVIEW_AFTER,
    SEND_LEASE,
    AnswerKind,
    Change,
    PspAnswer,
    TransferChange,
    transfer_call,
    transfer_create,
    transfer_history,
    transfer_lock,
    transfer_mark_due,
    transfer_open_of,
    transfer_order_pk,
    transfer_record,
    transfers_claim_due,
    transfers_due,
    transfers_of,
)

__all__ = [
    "CLAIM_LEASE",
    "NEEDS_MAPPING",
    "PAYOUT_REVIEW_AFTER",
    "SEND_LEASE",
    "AnswerKind",
    "Change",
    "NoPspAvailable",
    "NoResolver",
    "PspAnswer",
    "TransferChange",
    "account_resolve",
    "payout_name_check",
    "psp_amount_refusal",
    "psp_balances_read",
    "psp_candidates",
    "psp_institution_code",
    "psp_payable",
    "psp_pick",
    "route",
    "transfer_call",
    "transfer_create",
    "transfer_history",
    "transfer_lock",
    "transfer_mark_due",
    "transfer_open_of",
    "transfer_order_pk",
    "transfer_record",
    "transfers_claim_due",
    "transfers_due",
    "transfers_of",
]
