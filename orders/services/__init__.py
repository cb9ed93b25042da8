"""Every write to an order: one function per business action, whatever triggers it.

Views, admin actions, tasks, commands and the workflow call these. Each entry point runs in one
transaction that locks the order row first (``common.order_lock``), checks the transition on the locked
row, writes the ledger entries and outbox rows the transition implies, and makes the work it needs due in
the same transaction (a due time the lane claims, or a task: ``provision.queue``). No function here calls
out over HTTP while it holds a lock. Split by business action (as Zulip's ``zerver/actions``); the helpers
every action shares live in ``common``, which imports none of the action modules.
"""

from orders.services.accept import (
    ACCEPT_SETTLE_MARGIN,
    order_accept_later,
    order_accept_with_aggregator,
    order_apply_accept_refused,
    order_apply_accepted,
    orders_claim_accept_due,
    orders_make_accept_due,
)
from orders.services.common import (
    HoldExpired,
    OrderNotFound,
    OrderTermsConflict,
    OrderTransitionNotAllowed,
    SecondApproverRequired,
    order_check_hold_open,
    order_check_payout_allowed,
    order_lock,
    order_record_fulfil_reported_locked,
)
from orders.services.decide import order_decide, order_decline_reason, order_needs_staff_approval
from orders.services.delivery import (
    outbox_claim_due,
    outbox_deliver_claimed,
    outbox_deliver_due,
    outbox_deliver_one,
)
from orders.services.intake import Offer, offer_from_seed, order_receive
from orders.services.outbox import (
    OutboxAlreadyDelivered,
    outbox_abandon,
    outbox_enqueue,
    outbox_enqueue_balance_report,
    outbox_replay,
)
from orders.services.payout import (
    order_apply_psp_answer,
    order_payout_later,
    order_start_payout,
    orders_claim_payout_due,
)
from orders.services.staff import (
    APPROVAL_TIMEOUT_REASON,
    order_approve_payout,
    order_cancel,
    order_close_reversal,
    order_decline,
    order_expire_due,
    order_mark_paid,
    order_resolve_review,
)

__all__ = [
    "ACCEPT_SETTLE_MARGIN",
    "APPROVAL_TIMEOUT_REASON",
    "HoldExpired",
    "Offer",
    "OrderNotFound",
    "OrderTermsConflict",
    "OrderTransitionNotAllowed",
    "OutboxAlreadyDelivered",
    "SecondApproverRequired",
    "offer_from_seed",
    "order_accept_later",
    "order_accept_with_aggregator",
    "order_apply_accept_refused",
    "order_apply_accepted",
    "order_apply_psp_answer",
    "order_approve_payout",
    "order_cancel",
    "order_check_hold_open",
    "order_check_payout_allowed",
    "order_close_reversal",
    "order_decide",
    "order_decline",
    "order_decline_reason",
    "order_expire_due",
    "order_lock",
    "order_mark_paid",
    "order_needs_staff_approval",
    "order_payout_later",
    "order_receive",
    "order_record_fulfil_reported_locked",
    "order_resolve_review",
    "order_start_payout",
    "orders_claim_accept_due",
    "orders_claim_payout_due",
    "orders_make_accept_due",
    "outbox_abandon",
    "outbox_claim_due",
    "outbox_deliver_claimed",
    "outbox_deliver_due",
    "outbox_deliver_one",
    "outbox_enqueue",
    "outbox_enqueue_balance_report",
    "outbox_replay",
]
