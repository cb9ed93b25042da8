"""manage.py sync_balances: read every enabled PSP's balances now, record them with the drift from the
ledger, report the balances (the payout lane does the same every BALANCE_SYNC_INTERVAL seconds). The
ledger is never changed here: `manage.py balances book-drift` or the admin action books a drift."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from balances import selectors as balance_selectors
from orders import workflow
from psp import registry


class Command(BaseCommand):
    help = "Read every enabled PSP's balances, record them and the drift from the ledger, report balances."

    def handle(self, *args: Any, **options: Any) -> None:
        failed = []
        for adapter in registry.enabled():
            synced = workflow.balances_sync_psp(psp=adapter.name)
            if synced is None:
                failed.append(adapter.name)
            else:
                self.stdout.write(f"{adapter.name}: {', '.join(synced) or 'no currency of this node'}")
        for currency, drift in balance_selectors.balance_drifts(currencies=settings.CURRENCIES).items():
            if drift.amount:
                self.stdout.write(
                    f"{currency}: drift {drift.amount} (PSPs {drift.expected_total}, "
                    f"ledger {drift.ledger_total}); book it with `balances book-drift` once explained"
                )
        if failed:
            raise CommandError(f"could not read the balances of {', '.join(failed)}")
