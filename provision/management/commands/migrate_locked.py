"""``migrate`` that several containers may start at once: on PostgreSQL the first takes an advisory lock
and migrates, the others wait for it and then find nothing to do.

Web and worker both run it before they start (docker-compose.yml), so neither depends on the other's
start order and scaled replicas never apply a migration twice. On SQLite (one machine) it is ``migrate``.
"""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

# An arbitrary constant that names this lock among the database's advisory locks.
MIGRATION_LOCK_ID = 727_115_001


class Command(BaseCommand):
    help = "Apply migrations under a PostgreSQL advisory lock (safe when several processes start together)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-input", "--noinput", action="store_false", dest="interactive")

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options.get("verbosity", 1)
        if connection.vendor != "postgresql":
            call_command("migrate", interactive=False, verbosity=verbosity, stdout=self.stdout)
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        try:
            call_command("migrate", interactive=False, verbosity=verbosity, stdout=self.stdout)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
