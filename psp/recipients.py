"""Saved payees of PSPs that pay a recipient id rather than an account (Paystack's ``RCP_…`` codes).

An adapter that needs one asks its ``RecipientStore`` first and creates the recipient at the PSP only when
the store has none; the adapter itself never touches the database (``psp.clients`` hold no ORM code), it is
given a store when it is built: ``DatabaseRecipientStore`` in the node, a dict in unit tests.

A lost race (two lane threads creating the same recipient at once) is harmless: Paystack answers a second
create for the same account with the existing record, and the store keeps the first code it was given.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from django.db import IntegrityError, transaction

from provision.logging import mask_account
from psp.models import PspRecipient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecipientKey:
    """What makes two payouts go to the same payee at the PSP."""

    kind: str  # the PSP's recipient type (nuban, ghipss, mobile_money, kepss)
    institution_code: str  # the PSP's bank or operator code
    account: str = field(repr=False)  # the normalised account number or phone
    currency: str


class RecipientStore(Protocol):
    def get(self, key: RecipientKey) -> str | None:
        """The PSP's recipient code for ``key``, or None when none was saved."""

    def put(self, key: RecipientKey, code: str) -> None:
        """Save the PSP's recipient code for ``key`` (a code already saved for it is kept)."""


def account_key(account: str) -> str:
    return hashlib.sha256(account.encode("utf-8")).hexdigest()


class DatabaseRecipientStore:
    """``PspRecipient`` rows of one PSP."""

    def __init__(self, psp: str) -> None:
        self.psp = psp

    def get(self, key: RecipientKey) -> str | None:
        return (
            PspRecipient.objects.filter(
                psp=self.psp,
                kind=key.kind,
                institution_code=key.institution_code,
                account_key=account_key(key.account),
                currency=key.currency,
            )
            .values_list("recipient_code", flat=True)
            .first()
        )

    def put(self, key: RecipientKey, code: str) -> None:
        try:
            with transaction.atomic():
                PspRecipient.objects.create(
                    psp=self.psp,
                    kind=key.kind,
                    institution_code=key.institution_code,
                    account_key=account_key(key.account),
                    account_masked=mask_account(key.account),
                    currency=key.currency,
                    recipient_code=code,
                )
        except IntegrityError:
            logger.info("psp.recipient.already_saved", extra={"psp": self.psp, "kind": key.kind})
