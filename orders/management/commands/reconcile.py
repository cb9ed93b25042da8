"""manage.py reconcile --since 2026-11-01 [--csv out.csv] [--no-aggregator]: report every mismatch."""

from __future__ import annotations

import csv
from dataclasses import astuple, fields
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.reconciliation import Mismatch, reconcile


class Command(BaseCommand):
    help = "Compare local payouts with the PSPs and the aggregator; exit 1 when anything disagrees."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="ISO date or date-time (UTC), e.g. 2026-11-01")
        parser.add_argument("--csv", dest="csv_path", help="also write the mismatches to this CSV file")
        parser.add_argument("--no-aggregator", action="store_true", help="skip the aggregator's order list")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            since = datetime.fromisoformat(options["since"])
        except ValueError:
            raise CommandError(
                f"--since {options['since']!r} is not an ISO date such as 2026-11-01"
            ) from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        mismatches = reconcile(since=since, check_aggregator=not options["no_aggregator"])
        names = [f.name for f in fields(Mismatch)]
        widths = [max([len(n)] + [len(str(getattr(m, n))) for m in mismatches]) for n in names]
        self.stdout.write("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
        for mismatch in mismatches:
            values = astuple(mismatch)
            self.stdout.write("  ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)))
        if options.get("csv_path"):
            with open(options["csv_path"], "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(names)
                writer.writerows(astuple(m) for m in mismatches)
        if mismatches:
            raise CommandError(f"{len(mismatches)} mismatch(es) since {since.isoformat()}")
        self.stdout.write(f"no mismatches since {since.isoformat()}")
