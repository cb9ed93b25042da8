"""Which PSP may take a new payout: routed to it (``PspRoute``), enabled, able to pay the currency,
institution and amount (the PSP's own per-transaction limits), and healthy.

New payouts go only to PSPs that are healthy (``psp.health``: circuit breaker and failure-rate window);
look-ups of transfers already at a PSP always go to their own PSP, whatever its health (never here).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fnmatch import fnmatchcase

from django.conf import settings

from provision.errors import Conflict
from psp import health, registry
from psp.base import AmountRefusal, PspAdapter
from psp.models import CircuitState, InstitutionMapping, PspRoute

# PSPs that cannot pay without their own code for the institution (an ``InstitutionMapping`` row): an
# offer for an unmapped institution is declined, never accepted and then refused by the adapter. Lenco pays
# by its own code in every currency: the NIP bank code in NGN (v1), its bankId or the mobile-money operator
# (``momo:<operator>``) in ZMW and MWK (v2). Paystack pays every currency by its own bank or operator code,
# with the recipient type.
NEEDS_MAPPING = {
    ("lenco", "NGN"),
    ("lenco", "ZMW"),
    ("lenco", "MWK"),
    ("paystack", "NGN"),
    ("paystack", "GHS"),
    ("paystack", "KES"),
}


class NoPspAvailable(Conflict):
    code = "no_psp_available"


def psp_institution_code(*, psp: str, institution: str) -> str:
    """The PSP's own code for the aggregator's institution code ("" when unmapped or disabled)."""
    row = InstitutionMapping.objects.filter(psp=psp, institution=institution, enabled=True).first()
    return row.psp_code if row else ""


def _specificity(pattern: str) -> int:
    """0 for an exact code, 1 for a pattern with wildcards, 2 for ``*`` (most specific routes go first)."""
    if pattern == "*":
        return 2
    return 1 if any(char in pattern for char in "*?[") else 0


def psp_candidates(*, currency: str, institution: str) -> list[str]:
    """The enabled PSPs that may pay this currency and institution, in routing order (``PspRoute``).

    The PSPs that have routes for the currency are governed by them: the matching enabled routes, most
    specific first, then by priority. A PSP with no route for the currency at all (the sandbox, or a
    node that never set routes) follows, in the order of the ``PSP`` setting.
    """
    enabled = list(settings.PSP)
    routes = list(PspRoute.objects.filter(currency=currency))
    routed = {route.psp for route in routes}
    matching = sorted(
        (r for r in routes if r.enabled and r.psp in enabled and fnmatchcase(institution, r.institution)),
        key=lambda route: (_specificity(route.institution), route.priority),
    )
    ordered = list(dict.fromkeys(route.psp for route in matching))
    return [*ordered, *(name for name in enabled if name not in routed)]


def _able(
    *,
    currency: str,
    institution: str,
    exclude: list[str] | tuple[str, ...],
    amount: Decimal | None = None,
) -> list[PspAdapter]:
    adapters = (registry.adapter(name) for name in psp_candidates(currency=currency, institution=institution))
    return [
        adapter
        for adapter in adapters
        if adapter.name not in exclude
        and adapter.supports(currency=currency, institution=institution)
        and (amount is None or adapter.amount_refusal(currency=currency, amount=amount) is None)
        and (
            (adapter.name, currency) not in NEEDS_MAPPING
            or psp_institution_code(psp=adapter.name, institution=institution)
        )
    ]


def _healthy(able: list[PspAdapter], now: datetime | None) -> list[tuple[PspAdapter, health.PspHealth]]:
    if not able:
        return []
    states = health.psp_health(psps=[adapter.name for adapter in able], now=now)
    return [(adapter, states[adapter.name]) for adapter in able if states[adapter.name].takes_new_payouts]


def route(
    *,
    currency: str,
    institution: str,
    exclude: list[str] | tuple[str, ...] = (),
    now: datetime | None = None,
    amount: Decimal | None = None,
) -> list[PspAdapter]:
    """The adapters that may take a NEW payout (of ``amount``, when given), in routing order (excluded,
    unable and unhealthy PSPs left out). Never used to look up an existing transfer."""
    able = _able(currency=currency, institution=institution, exclude=exclude, amount=amount)
    return [adapter for adapter, _state in _healthy(able, now)]


def psp_payable(
    *,
    currency: str,
    institution: str,
    exclude: list[str] | tuple[str, ...] = (),
    amount: Decimal | None = None,
) -> tuple[bool, bool]:
    """(some enabled PSP can pay this at all, one of those takes new payouts now), in one routing pass."""
    able = _able(currency=currency, institution=institution, exclude=exclude, amount=amount)
    return bool(able), bool(_healthy(able, None))


def psp_amount_refusal(
    *, currency: str, institution: str, amount: Decimal, exclude: list[str] | tuple[str, ...] = ()
) -> AmountRefusal | None:
    """Why the PSPs that could pay this currency and institution refuse ``amount`` (the first one's
    reason, in routing order), or None when one of them takes it or none could pay it at all."""
    refusals = [
        adapter.amount_refusal(currency=currency, amount=amount)
        for adapter in _able(currency=currency, institution=institution, exclude=exclude)
    ]
    if not refusals or None in refusals:
        return None
    return refusals[0]


def psp_pick(
    *,
    currency: str,
    institution: str,
    exclude: list[str] | tuple[str, ...],
    amount: Decimal | None = None,
) -> PspAdapter:
    """The PSP a new payout goes to: the first healthy one whose circuit lets it through (claiming a
    recovering circuit's one probe). Raises NoPspAvailable."""
    able = _able(currency=currency, institution=institution, exclude=exclude, amount=amount)
    for adapter, state in _healthy(able, None):
        if state.circuit == CircuitState.CLOSED or health.circuit_claim_probe(psp=adapter.name):
            return adapter
    raise NoPspAvailable("No PSP can pay this order", currency=currency, institution=institution)
