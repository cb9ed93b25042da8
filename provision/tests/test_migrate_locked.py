"""manage.py migrate_locked: migrate under a PostgreSQL advisory lock, released afterwards."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from provision.management.commands.migrate_locked import MIGRATION_LOCK_ID


@pytest.mark.django_db
def test_migrate_locked_applies_nothing_on_a_migrated_database_and_leaves_no_lock() -> None:
    out = StringIO()

    call_command("migrate_locked", "--no-input", stdout=out)

    assert "No migrations to apply." in out.getvalue()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                [MIGRATION_LOCK_ID],
            )
            assert cursor.fetchone() == (0,)
