"""Create a demo staff user for `make run`: only with DEBUG and the sandbox PSP, when no user exists; the
demo user then books the sandbox's balances as the opening balances (`manage.py balances open`), since a
balance sync records the PSP's figure but never changes the ledger by itself."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a demo superuser when DEBUG is on, the PSP is the sandbox and no user exists yet."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG or settings.PSP != ["sandbox"]:
            return
        user_model = get_user_model()
        if user_model.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username="demo", email="demo@example.invalid", password=password)
        self.stdout.write(
            self.style.WARNING(
                f"Demo staff user created for the sandbox: username 'demo', password '{password}'"
            )
        )
        call_command(
            "balances",
            "open",
            "--actor",
            "demo",
            "--reason",
            "Demo: opening balance from the sandbox PSP",
            stdout=self.stdout,
        )
