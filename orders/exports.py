"""The columns of the orders CSV export (``provision.csv_export``): what a reconciliation needs, with the
account number masked as the list shows it."""

from __future__ import annotations

from orders.models import Order
from provision.csv_export import Column
from provision.formatting import money_plain
from provision.logging import mask_account


def _approver(order: Order) -> str:
    return order.approved_by.get_username() if order.approved_by else ""


ORDER_COLUMNS = (
    Column("order_id", lambda o: o.order_id),
    Column("status", lambda o: o.status),
    Column("amount", lambda o: money_plain(o.amount, o.currency)),
    Column("currency", lambda o: o.currency),
    Column("institution", lambda o: o.institution),
    Column("account", lambda o: mask_account(o.account_identifier) if o.account_identifier else ""),
    Column("account_name", lambda o: o.account_name),
    Column("memo", lambda o: o.memo),
    Column("psp", lambda o: o.psp),
    Column("psp_tx_id", lambda o: o.psp_tx_id),
    Column("external_reference", lambda o: o.external_reference),
    Column("decline_reason", lambda o: o.decline_reason),
    Column("cancel_reason", lambda o: o.cancel_reason),
    Column("approved_by", _approver),
    Column("received_at", lambda o: o.received_at),
    Column("accepted_at", lambda o: o.accepted_at),
    Column("paid_at", lambda o: o.paid_at),
    Column("finished_at", lambda o: o.finished_at),
)
