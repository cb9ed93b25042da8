"""Inspect and steer the outbox: list rows, replay a refused one, abandon one. A delivered row is refused
(as in admin); with ``--actor`` the change goes into admin's history under that staff user."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders import services
from orders.models import OutboxMessage, OutboxStatus

# As the admin actions word it (orders.admin.OutboxMessageAdmin).
HISTORY = {
    "replay": "Sent again from now (manage.py outbox)",
    "abandon": "Abandoned: the aggregator will not be told (manage.py outbox)",
}


class Command(BaseCommand):
    help = "List outbox rows (default: not delivered), or replay / abandon one by id."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action")
        listing = sub.add_parser("list", help="list rows")
        listing.add_argument("--status", choices=[s.value for s in OutboxStatus], default=None)
        listing.add_argument("--limit", type=int, default=50)
        for name in ("replay", "abandon"):
            action = sub.add_parser(name)
            action.add_argument("message_id", type=int)
            action.add_argument("--actor", default="", help="username of the staff member doing this")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action") or "list"
        if action in {"replay", "abandon"}:
            if not OutboxMessage.objects.filter(pk=options["message_id"]).exists():
                raise CommandError(f"no outbox row {options['message_id']}")
            actor = None
            if options.get("actor"):
                actor = get_user_model().objects.filter(username=options["actor"]).first()
                if actor is None:
                    raise CommandError(f"no user {options['actor']!r}")
            func = services.outbox_replay if action == "replay" else services.outbox_abandon
            try:
                message = func(message_id=options["message_id"])
            except services.OutboxAlreadyDelivered as exc:
                raise CommandError(exc.message) from None
            if actor is not None:
                LogEntry.objects.log_actions(
                    actor.pk,
                    OutboxMessage.objects.filter(pk=message.pk),
                    CHANGE,
                    HISTORY[action],
                    single_object=True,
                )
            self.stdout.write(f"{message.pk} {message.dedupe_key} -> {message.status}")
            return
        rows = OutboxMessage.objects.order_by("pk")
        status = options.get("status")
        rows = rows.filter(status=status) if status else rows.exclude(status=OutboxStatus.DELIVERED)
        self.stdout.write(
            f"{'id':>6} {'status':<10} {'tries':>5} {'next attempt':<20} {'last':>4}  key / error"
        )
        for row in rows[: options.get("limit", 50)]:
            self.stdout.write(
                f"{row.pk:>6} {row.status:<10} {row.attempts:>5} {row.next_attempt_at:%Y-%m-%d %H:%M:%S}  "
                f"{row.last_status_code or '':>4}  {row.dedupe_key} {row.last_error[:60]}"
            )
