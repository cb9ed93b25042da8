"""Staff commands on balances, each audited to the ledger with the acting user."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from balances import selectors, services
from balances.models import Balance
from provision.errors import ApplicationError


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"--amount {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise CommandError("--amount must be finite")
    return value


def _line(currency: str, balance: Balance) -> str:
    return f"{currency} total={balance.total} reserved={balance.reserved} available={balance.available}"


class Command(BaseCommand):
    help = (
        "show | drift | set | credit | adjust | book-drift | open | verify balances (set/credit/adjust "
        "need --reason; book-drift needs --currency, --amount (the drift shown), --reason and --actor; "
        "open books the PSPs' figure of every currency whose ledger is still empty, with --reason, --actor)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action", choices=["show", "drift", "set", "credit", "adjust", "book-drift", "open", "verify"]
        )
        parser.add_argument("--currency")
        parser.add_argument("--amount")
        parser.add_argument("--reason", default="")
        parser.add_argument("--actor", help="username of the staff member doing this (recorded on the entry)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "verify":
            problems = services.balance_verify()
            for line in problems:
                self.stderr.write(line)
            if problems:
                raise CommandError(f"{len(problems)} balance(s) disagree with the ledger")
            self.stdout.write("ledger and balances agree")
            return
        if action == "show":
            for currency, balance in selectors.balances_by_currency().items():
                self.stdout.write(_line(currency, balance))
            return
        if action == "drift":
            for currency, drift in selectors.balance_drifts(currencies=settings.CURRENCIES).items():
                self.stdout.write(
                    f"{currency} drift={drift.amount} psps={drift.psp_total} unseen={drift.unseen} "
                    f"ledger={drift.ledger_total} last_read={drift.last_read_at:%Y-%m-%d %H:%M:%S %Z}"
                )
            return
        if action == "open":
            self._open(reason=options["reason"], username=options.get("actor") or "")
            return
        currency = (options.get("currency") or "").upper()
        if not currency or options.get("amount") is None:
            raise CommandError("--currency and --amount are required")
        if not options["reason"]:
            raise CommandError("--reason is required: every change is audited")
        actor = None
        if options.get("actor"):
            actor = get_user_model().objects.filter(username=options["actor"]).first()
            if actor is None:
                raise CommandError(f"no user {options['actor']!r}")
        amount = _amount(options["amount"])
        reason = options["reason"]
        if action == "book-drift" and actor is None:
            raise CommandError("--actor is required: a drift is booked by a named staff user")
        try:
            self._change(action, currency=currency, amount=amount, reason=reason, actor=actor)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        balance = selectors.balance_get(currency=currency)
        self.stdout.write(_line(currency, balance))

    def _open(self, *, reason: str, username: str) -> None:
        """Opening balances: book the drift of each currency whose ledger has no entry yet (a new node)."""
        if not reason or not username:
            raise CommandError("--reason and --actor are required: every change is audited")
        actor = get_user_model().objects.filter(username=username).first()
        if actor is None:
            raise CommandError(f"no user {username!r}")
        for currency, drift in selectors.balance_drifts(currencies=settings.CURRENCIES).items():
            if drift.amount == 0 or selectors.ledger_seqs(currencies=[currency])[currency]:
                continue
            try:
                services.balance_drift_book(
                    currency=currency, expected=drift.amount, reason=reason, actor=actor
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from None
            self.stdout.write(_line(currency, selectors.balance_get(currency=currency)))

    def _change(self, action: str, *, currency: str, amount: Decimal, reason: str, actor: Any) -> None:
        if action == "set":
            if amount < 0:
                raise CommandError("--amount must not be negative")
            services.balance_set(currency=currency, total=amount, reason=reason, actor=actor)
        elif action == "book-drift":
            services.balance_drift_book(currency=currency, expected=amount, reason=reason, actor=actor)
        elif action == "credit":
            services.balance_credit(currency=currency, amount=amount, reason=reason, actor=actor)
        else:
            services.balance_adjust(currency=currency, delta=amount, reason=reason, actor=actor)
