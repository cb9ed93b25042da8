"""The columns of the ledger CSV export (``provision.csv_export``). Deltas are signed plain decimals."""

from __future__ import annotations

from provision.csv_export import Column
from provision.formatting import money_plain

LEDGER_COLUMNS = (
    Column("id", lambda e: e.pk),
    Column("created_at", lambda e: e.created_at),
    Column("currency", lambda e: e.balance.currency),
    Column("kind", lambda e: e.kind),
    Column("amount", lambda e: money_plain(e.amount, e.balance.currency)),
    Column("total_delta", lambda e: money_plain(e.total_delta, e.balance.currency)),
    Column("reserved_delta", lambda e: money_plain(e.reserved_delta, e.balance.currency)),
    Column("order_id", lambda e: e.order.order_id if e.order else ""),
    Column("psp", lambda e: e.psp),
    Column("actor", lambda e: e.actor.get_username() if e.actor else ""),
    Column("reason", lambda e: e.reason),
)
