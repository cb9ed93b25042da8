"""The pre-payout account-name check (``settings.PAYOUT_NAME_CHECK``: off, warn or hold).

``payout_start`` runs ``name_check_run`` *before* it takes the order lock (the resolve is an HTTP call, and
no HTTP happens under a row lock), through the PSP it is about to pay with, then locks the order, re-checks
its state and acts on the verdict (``NameCheck.holds``):

    verdict      meaning                                                   warn            hold
    match        the PSP's holder name agrees (``psp.names``)              pay             pay
    skipped      nothing to compare (the PSP gives no name, cannot         pay             pay
                 resolve this kind of account, or no PSP to ask)
    mismatch     the names disagree                                        log, pay        hold
    unresolved   the PSP says the account does not exist                   log, pay        hold
    unavailable  the PSP could not be asked (timeout, 5xx...)              log, pay        hold

Only an ``accepted`` order is held (``order.hold``, the usual approval timeout, a description saying why);
an order already ``held`` is being approved by staff, whose decision stands, so a mismatch is only logged.
The log event is ``payout.name_mismatch`` for mismatch/unresolved and ``payout.name_check_unavailable``
for unavailable. Names themselves never reach a log line; the hold description (seen by staff) has them.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from django.conf import settings

from orders.models import Order
from psp import health
from psp.base import FailureReason, PspAdapter, PspRejected, PspUnavailable, Recipient
from psp.names import person_names_match

logger = logging.getLogger(__name__)


class Verdict(enum.StrEnum):
    MATCH = "match"
    SKIPPED = "skipped"
    MISMATCH = "mismatch"
    UNRESOLVED = "unresolved"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class NameCheck:
    verdict: Verdict
    psp: str = ""
    psp_name: str = ""  # the holder's name as the PSP gave it
    detail: str = ""

    @property
    def doubtful(self) -> bool:
        return self.verdict in (Verdict.MISMATCH, Verdict.UNRESOLVED, Verdict.UNAVAILABLE)

    def holds(self, *, mode: str) -> bool:
        return mode == "hold" and self.doubtful

    def description(self, *, expected: str) -> str:
        if self.verdict == Verdict.UNAVAILABLE:
            text = f"Name check: {self.psp} unavailable ({self.detail})"
        elif self.verdict == Verdict.UNRESOLVED:
            text = f"Name check: {self.psp} could not find the account ({self.detail})"
        else:
            text = f"Name check: {self.psp} has {self.psp_name!r}, the order says {expected!r}"
        return text[:255]


def name_check_enabled(order: Order) -> bool:
    return settings.PAYOUT_NAME_CHECK != "off" and bool(order.account_name.strip())


def name_check_run(*, order: Order, adapter: PspAdapter, psp_institution: str) -> NameCheck:
    """Resolve the order's account through ``adapter`` and compare the names. Makes an HTTP call: no lock."""
    recipient = Recipient(
        institution=order.institution,
        account_identifier=order.account_identifier,
        account_name=order.account_name,
        psp_institution=psp_institution,
    )
    try:
        resolved = health.observed_call(
            adapter,
            "resolve_account",
            lambda: adapter.resolve_account(recipient=recipient, currency=order.currency),
        )
    except PspUnavailable as exc:
        return NameCheck(Verdict.UNAVAILABLE, psp=adapter.name, detail=exc.message[:120])
    except PspRejected as exc:
        if exc.reason == FailureReason.RECIPIENT_INVALID:
            return NameCheck(Verdict.UNRESOLVED, psp=adapter.name, detail=exc.message[:120])
        return NameCheck(Verdict.SKIPPED, psp=adapter.name, detail=exc.message[:120])
    agrees = person_names_match(order.account_name, resolved.account_name)
    if agrees is None:
        return NameCheck(Verdict.SKIPPED, psp=adapter.name, detail="no name to compare")
    return NameCheck(
        Verdict.MATCH if agrees else Verdict.MISMATCH, psp=adapter.name, psp_name=resolved.account_name
    )


def name_check_log(*, check: NameCheck, order: Order, held: bool) -> None:
    extra = {"order_id": order.order_id, "psp": check.psp, "verdict": str(check.verdict), "held": held}
    if check.verdict == Verdict.UNAVAILABLE:
        logger.warning("payout.name_check_unavailable", extra=extra)
    elif check.doubtful:
        logger.warning("payout.name_mismatch", extra=extra)
    else:
        logger.info("payout.name_checked", extra=extra)
