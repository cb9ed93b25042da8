"""manage.py psp sync_banks [--psp lenco] [--dry-run]: refresh the institution mapping from PSP bank lists."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from psp.banks import BankSync, institution_mapping_sync


class Command(BaseCommand):
    help = "PSP operations. sync_banks: match each PSP's bank list to the aggregator's institutions."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="action")
        sync = actions.add_parser(
            "sync_banks",
            help="fetch the PSP's bank list and update the institution mapping by normalised name",
        )
        sync.add_argument(
            "--psp",
            choices=tuple(settings.PSP_ADAPTERS),
            help="one PSP (default: every PSP enabled in settings.PSP)",
        )
        sync.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "sync_banks":
            self.sync_banks(psps=[options["psp"]] if options.get("psp") else list(settings.PSP), **options)

    def sync_banks(self, *, psps: list[str], dry_run: bool = False, **_: Any) -> None:
        fetched_any = False
        for psp in psps:
            results = institution_mapping_sync(psp=psp, dry_run=dry_run)
            if not results:
                self.stdout.write(f"{psp}: lists no banks for any currency the aggregator uses")
            for result in results:
                fetched_any = fetched_any or not result.error
                self._report(result, dry_run=dry_run)
        if not fetched_any:
            raise CommandError(f"no bank list could be fetched from {', '.join(psps)}")

    def _report(self, result: BankSync, *, dry_run: bool) -> None:
        label = f"{result.psp} {result.currency}"
        if result.error:
            self.stderr.write(f"{label}: could not fetch the bank list: {result.error}")
            return
        self.stdout.write(f"{label}: {result.fetched} banks fetched")
        for match in result.matched:
            self.stdout.write(
                f"  matched    {match.institution:<10} {match.name} -> {match.psp_code} ({match.psp_name})"
            )
        verb = "would change" if dry_run else "changed"
        for change in result.changed:
            self.stdout.write(
                f"  {verb:<10} {change.institution:<10} {change.name}: "
                f"{change.old_code or '(new)'} -> {change.new_code}"
            )
        for miss in result.unmatched:
            self.stdout.write(f"  unmatched  {miss.institution:<10} {miss.name}: {miss.why}")
        self.stdout.write(
            f"{label}: {len(result.matched)} matched, {len(result.changed)} {verb}, "
            f"{len(result.unmatched)} unmatched"
        )
