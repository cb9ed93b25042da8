"""The columns of the transfers CSV export (``provision.csv_export``)."""

from __future__ import annotations

from provision.csv_export import Column
from provision.formatting import money_plain

TRANSFER_COLUMNS = (
    Column("reference", lambda t: t.reference),
    Column("order_id", lambda t: t.order.order_id),
    Column("psp", lambda t: t.psp),
    Column("attempt", lambda t: t.attempt),
    Column("status", lambda t: t.status),
    Column("amount", lambda t: money_plain(t.amount, t.currency)),
    Column("fee", lambda t: money_plain(t.fee, t.currency)),
    Column("currency", lambda t: t.currency),
    Column("account", lambda t: t.account_masked),
    Column("psp_institution", lambda t: t.psp_institution),
    Column("psp_transaction_id", lambda t: t.psp_transaction_id),
    Column("failure_reason", lambda t: t.failure_reason),
    Column("failure_message", lambda t: t.failure_message),
    Column("created_at", lambda t: t.created_at),
    Column("updated_at", lambda t: t.updated_at),
)
