"""manage.py sync_balances: read every enabled PSP's balances now, apply them, report them (the payout
lane does the same every BALANCE_SYNC_INTERVAL seconds)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from orders import workflow
from psp import registry


class Command(BaseCommand):
    help = "Read every enabled PSP's balances, apply them to the ledger and report them to the aggregator."

    def handle(self, *args: Any, **options: Any) -> None:
        failed = []
        for adapter in registry.enabled():
            synced = workflow.balances_sync_psp(psp=adapter.name)
            if synced is None:
                failed.append(adapter.name)
            else:
                self.stdout.write(f"{adapter.name}: {', '.join(synced) or 'no currency of this node'}")
        if failed:
            raise CommandError(f"could not read the balances of {', '.join(failed)}")
