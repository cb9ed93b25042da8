"""Reads of a PSP that move no money: an account holder's name, the PSP's balances, the name check."""

from __future__ import annotations

from orders.models import Order
from psp import health, registry
from psp.base import FailureReason, PspBalanceReading, PspRejected, Recipient
from psp.name_check import NameCheck, name_check_enabled, name_check_run
from psp.services.routing import psp_institution_code, route


class NoResolver(PspRejected):
    pass


def account_resolve(*, account_identifier: str, institution: str, currency: str) -> str:
    """The account holder's name from the first healthy PSP that serves the institution.

    Raises PspRejected (NoResolver when no PSP serves it), PspUnavailable.
    """
    adapters = route(currency=currency, institution=institution)
    if not adapters:
        raise NoResolver("No PSP serves this institution", psp="", reason=FailureReason.UNSUPPORTED)
    adapter = adapters[0]
    recipient = Recipient(
        institution=institution,
        account_identifier=account_identifier,
        psp_institution=psp_institution_code(psp=adapter.name, institution=institution),
    )
    name = health.observed_call(
        adapter, "resolve_account", lambda: adapter.resolve_account(recipient=recipient, currency=currency)
    )
    if not name.account_name or name.account_name.strip().upper() == "OK":
        raise PspRejected(
            "The PSP returned no account name", psp=adapter.name, reason=FailureReason.RECIPIENT_INVALID
        )
    return name.account_name


def psp_balances_read(*, psp: str) -> list[PspBalanceReading]:
    """The PSP's balances, read through the instrumented path. Raises PspError."""
    adapter = registry.adapter(psp)
    return health.observed_call(adapter, "get_balances", adapter.get_balances)


def payout_name_check(*, order: Order, exclude: list[str]) -> NameCheck | None:
    """Resolve and compare the recipient's name through the PSP a new payout would go to (an HTTP call:
    no lock held); None when the check is off or does not apply, or no PSP could take the payout."""
    if not name_check_enabled(order):
        return None
    candidates = route(currency=order.currency, institution=order.institution, exclude=exclude)
    if not candidates:
        return None
    adapter = candidates[0]
    return name_check_run(
        order=order,
        adapter=adapter,
        psp_institution=psp_institution_code(psp=adapter.name, institution=order.institution),
    )
