"""Keep ``InstitutionMapping`` true to each PSP's own bank list (``manage.py psp sync_banks``).

The aggregator names institutions by its own codes (``psp/data/institutions.json``, plus any institution
already in ``InstitutionMapping``); a PSP pays by its own code (Lenco: the NIP code in NGN, its ``bankId``
elsewhere). For every aggregator institution of a currency the PSP lists banks for, the PSP's bank is the
one whose name has the same ``psp.names.bank_name_key``:

* exactly one such bank, or several of which one is already the mapped code: **matched**; the mapping row is
  created, or its ``psp_code`` updated when it differs (**changed**). ``enabled`` is never touched: a row ops
  disabled stays disabled.
* none, or several and none of them already mapped: **unmatched**; an existing row is left as it is (the
  report says when its code is not in the PSP's list at all, for ops to look at).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from django.db import transaction

from psp import health, registry
from psp.base import Bank, FailureReason, PspError, PspRejected
from psp.models import InstitutionMapping
from psp.names import bank_name_key

logger = logging.getLogger(__name__)

INSTITUTIONS_FILE = Path(__file__).resolve().parent / "data" / "institutions.json"


@dataclass(frozen=True)
class BankMatch:
    institution: str
    name: str
    psp_code: str
    psp_name: str


@dataclass(frozen=True)
class MappingChange:
    institution: str
    name: str
    old_code: str  # "" when the row was created
    new_code: str


@dataclass(frozen=True)
class BankUnmatched:
    institution: str
    name: str
    why: str


@dataclass
class BankSync:
    """What one (PSP, currency) sync found and did; ``error`` set when the bank list could not be fetched."""

    psp: str
    currency: str
    fetched: int = 0
    error: str = ""
    matched: list[BankMatch] = field(default_factory=list)
    changed: list[MappingChange] = field(default_factory=list)
    unmatched: list[BankUnmatched] = field(default_factory=list)


def aggregator_institutions() -> dict[str, dict[str, str]]:
    """Currency -> {aggregator code: name}: the bundled list, plus institutions only known from mappings."""
    currencies = json.loads(INSTITUTIONS_FILE.read_text(encoding="utf-8"))["currencies"]
    institutions: dict[str, dict[str, str]] = {
        currency: {item["code"]: item["name"] for item in items} for currency, items in currencies.items()
    }
    for row in InstitutionMapping.objects.exclude(institution_name="").order_by("pk"):
        institutions.setdefault(row.currency, {}).setdefault(row.institution, row.institution_name)
    return institutions


def institution_mapping_sync(*, psp: str, dry_run: bool = False) -> list[BankSync]:
    """Fetch ``psp``'s bank list per currency and match it to the aggregator's institutions.

    Currencies the PSP lists no banks for are left out of the result; a fetch that fails is a BankSync with
    ``error`` set (nothing written for it). With ``dry_run`` nothing is written at all.
    """
    adapter = registry.adapter(psp)
    results = []
    for currency, institutions in sorted(aggregator_institutions().items()):
        try:
            banks = health.observed_call(
                adapter, "list_banks", partial(adapter.list_banks, currency=currency)
            )
        except PspRejected as exc:
            if exc.reason == FailureReason.UNSUPPORTED:
                continue
            results.append(BankSync(psp=psp, currency=currency, error=exc.message[:200]))
            continue
        except PspError as exc:
            results.append(BankSync(psp=psp, currency=currency, error=exc.message[:200]))
            continue
        results.append(_sync_currency(psp, currency, institutions, banks, dry_run=dry_run))
    return results


def _sync_currency(
    psp: str, currency: str, institutions: dict[str, str], banks: list[Bank], *, dry_run: bool
) -> BankSync:
    sync = BankSync(psp=psp, currency=currency, fetched=len(banks))
    by_key: dict[str, list[Bank]] = defaultdict(list)
    for bank in banks:
        by_key[bank_name_key(bank.name)].append(bank)
    listed_codes = {bank.code for bank in banks}
    with transaction.atomic():
        rows = {
            row.institution: row
            for row in InstitutionMapping.objects.select_for_update().filter(
                psp=psp, institution__in=list(institutions)
            )
        }
        for code, name in sorted(institutions.items()):
            row = rows.get(code)
            candidates = by_key.get(bank_name_key(name), [])
            already = [bank for bank in candidates if row is not None and bank.code == row.psp_code]
            if already or len(candidates) == 1:
                bank = (already or candidates)[0]
            else:
                why = (
                    f"{len(candidates)} {psp} banks of that name ({', '.join(b.code for b in candidates)})"
                    if candidates
                    else f"no {psp} bank of that name"
                )
                if row is not None:
                    listed = "" if row.psp_code in listed_codes else f", not in {psp}'s list"
                    why += f"; mapped to {row.psp_code}{listed}"
                sync.unmatched.append(BankUnmatched(institution=code, name=name, why=why))
                continue
            sync.matched.append(
                BankMatch(institution=code, name=name, psp_code=bank.code, psp_name=bank.name)
            )
            if row is not None and row.psp_code == bank.code:
                continue
            sync.changed.append(
                MappingChange(
                    institution=code, name=name, old_code=row.psp_code if row else "", new_code=bank.code
                )
            )
            if dry_run:
                continue
            if row is None:
                InstitutionMapping.objects.create(
                    psp=psp, currency=currency, institution=code, institution_name=name, psp_code=bank.code
                )
            else:
                row.psp_code = bank.code
                row.institution_name = row.institution_name or name
                row.save(update_fields=["psp_code", "institution_name"])
    logger.info(
        "psp.banks_synced",
        extra={
            "psp": psp,
            "currency": currency,
            "fetched": sync.fetched,
            "matched": len(sync.matched),
            "changed": len(sync.changed),
            "unmatched": len(sync.unmatched),
            "dry_run": dry_run,
        },
    )
    return sync
