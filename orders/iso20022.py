"""ISO 20022 for manual batches: export pain.001.001.09, import pain.002 status reports.

Export moves each selected order to ``paying`` with a bank-file Transfer (so it cannot be paid twice,
by file and by PSP) in one transaction, builds the file and validates it against the official XSD
before anything is committed. Import maps each transaction status to the normal services: accepted
and settled (ACSC/ACCC) -> paid; rejected (RJCT) -> payout failed with the reason code. Both run the
maker-checker rule (``services.order_check_payout_allowed``) for the acting staff user: a success line
the importer may not apply is reported as not applied and changes nothing.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from orders import services
from orders.models import Order
from orders.services.common import report_fulfil
from psp import external
from psp import services as psp_services
from psp.base import FailureReason, PayoutResult, PayoutStatus
from psp.models import Transfer

if TYPE_CHECKING:
    import xmlschema

logger = logging.getLogger(__name__)

PAIN001_NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
SCHEMA_PATH = Path(__file__).resolve().parent / "iso20022_schemas" / "pain.001.001.09.xsd"
BIC = re.compile(r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
SUCCESS_CODES = {"ACSC", "ACCC"}
FAILURE_CODES = {"RJCT"}
FILE_ID_MAX_LENGTH = 35  # InstrId / EndToEndId: Max35Text


class BankFileInvalid(services.OrderTransitionNotAllowed):
    code = "bank_file_invalid"


@dataclass(frozen=True)
class Debtor:
    name: str
    account: str
    agent_bic: str = ""


@cache
def _schema() -> xmlschema.XMLSchema:
    import xmlschema  # imported when a bank file is handled: ~24 MB that no other path needs

    return xmlschema.XMLSchema(str(SCHEMA_PATH))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{PAIN001_NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _agent(parent: ET.Element, tag: str, code: str) -> None:
    institution = _sub(_sub(parent, tag), "FinInstnId")
    if BIC.match(code):
        _sub(institution, "BICFI", code)
    else:
        _sub(_sub(institution, "Othr"), "Id", code[:35] or "NOTPROVIDED")


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def pain001_document(
    *,
    orders: list[Order],
    references: dict[int, str],
    debtor: Debtor,
    message_id: str,
    created_at: datetime,
    execution_date: date,
) -> bytes:
    """Build a pain.001.001.09 document for ``orders`` (no validation; see ``bank_file_export``)."""
    ET.register_namespace("", PAIN001_NS)
    total = sum((order.amount for order in orders), Decimal("0"))
    document = ET.Element(f"{{{PAIN001_NS}}}Document")
    initiation = _sub(document, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    _sub(header, "NbOfTxs", str(len(orders)))
    _sub(header, "CtrlSum", _amount(total))
    _sub(_sub(header, "InitgPty"), "Nm", debtor.name[:140])
    payment = _sub(initiation, "PmtInf")
    _sub(payment, "PmtInfId", message_id)
    _sub(payment, "PmtMtd", "TRF")
    _sub(payment, "NbOfTxs", str(len(orders)))
    _sub(payment, "CtrlSum", _amount(total))
    _sub(_sub(payment, "ReqdExctnDt"), "Dt", execution_date.isoformat())
    _sub(_sub(payment, "Dbtr"), "Nm", debtor.name[:140])
    _sub(_sub(_sub(_sub(payment, "DbtrAcct"), "Id"), "Othr"), "Id", debtor.account[:34])
    _agent(payment, "DbtrAgt", debtor.agent_bic)
    for order in orders:
        tx = _sub(payment, "CdtTrfTxInf")
        ids = _sub(tx, "PmtId")
        # Whole, never cut: the pain.002 finds the transfer by this id (the XSD refuses over 35 characters).
        _sub(ids, "InstrId", references[order.pk])
        _sub(ids, "EndToEndId", references[order.pk])
        _sub(_sub(tx, "Amt"), "InstdAmt", _amount(order.amount), Ccy=order.currency[:3])
        _agent(tx, "CdtrAgt", order.institution)
        _sub(_sub(tx, "Cdtr"), "Nm", (order.account_name or "UNKNOWN")[:140])
        _sub(_sub(_sub(_sub(tx, "CdtrAcct"), "Id"), "Othr"), "Id", order.account_identifier[:34])
        if order.memo:
            _sub(_sub(tx, "RmtInf"), "Ustrd", order.memo[:140])
    return ET.tostring(document, encoding="utf-8", xml_declaration=True)


def pain001_validate(xml: bytes) -> list[str]:
    """Every XSD violation of ``xml`` (empty when it is valid pain.001.001.09)."""
    return [str(error.reason or error) for error in _schema().iter_errors(xml.decode("utf-8"))]


@transaction.atomic(durable=True)
def bank_file_export(
    *,
    order_pks: list[int],
    debtor: Debtor,
    actor: AbstractBaseUser | None,
    execution_date: date | None = None,
) -> tuple[bytes, list[Order]]:
    """Move the orders to ``paying`` by bank file and return the validated pain.001 document.

    Raises OrderTransitionNotAllowed when an order cannot be paid now (HoldExpired: held past its
    approval deadline), SecondApproverRequired (maker-checker), BankFileInvalid when the file does not
    validate (nothing is changed in any case).
    """
    now = timezone.now()
    message_id = f"PN{now:%Y%m%d%H%M%S}{min(order_pks) if order_pks else 0}"[:35]
    orders = list(Order.objects.select_for_update(of=("self",)).filter(pk__in=order_pks).order_by("pk"))
    references: dict[int, str] = {}
    for order in orders:
        if not can_proceed(order.start_payout) or not order.account_identifier:
            raise services.OrderTransitionNotAllowed(
                f"{order.order_id} cannot be exported: it is {order.get_status_display().lower()}",
                order_id=order.order_id,
            )
        services.order_check_hold_open(order=order, now=now)
        services.order_check_payout_allowed(order=order, actor=actor)
        transfer = external.transfer_start_external(
            order=order, psp=external.BANK_FILE, message_id=message_id
        )
        references[order.pk] = transfer.reference
        if actor is not None and order.approved_by_id is None:
            order.approved_by = actor
        order.start_payout(
            psp=external.BANK_FILE, by=actor, description=f"Exported in bank file {message_id}"
        )
        order.psp_tx_id = transfer.reference
        order.save()
        report_fulfil(order, validation_status="pending")
    xml = pain001_document(
        orders=orders,
        references=references,
        debtor=debtor,
        message_id=message_id,
        created_at=now,
        execution_date=execution_date or now.date(),
    )
    problems = pain001_validate(xml)
    if problems:
        raise BankFileInvalid("The bank file does not validate: " + "; ".join(problems[:3]))
    logger.info("bank_file.exported", extra={"message_id": message_id, "orders": len(orders)})
    return xml, orders


@dataclass(frozen=True)
class StatusLine:
    reference: str
    status: str
    reason: str
    outcome: str
    applied: bool = True


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_text(element: ET.Element, path: list[str]) -> str:
    current: ET.Element | None = element
    for name in path:
        current = next((child for child in (current or []) if _local(child.tag) == name), None)
        if current is None:
            return ""
    return (current.text or "").strip() if current is not None else ""


def _parse_untrusted(xml: bytes) -> ET.Element:
    """Parse an uploaded file with entity expansion and external resources refused (xmlschema defuse)."""
    import xmlschema

    try:
        resource = xmlschema.XMLResource(xml, defuse="always", allow="none")
    except (xmlschema.XMLResourceError, ET.ParseError, ValueError) as exc:
        raise BankFileInvalid(f"Not a readable XML status report: {exc}") from exc
    root = resource.root
    if _local(root.tag) != "Document" or not any(_local(el.tag) == "CstmrPmtStsRpt" for el in root):
        raise BankFileInvalid("Not a pain.002 customer payment status report")
    return root


def _transfers_named(file_id: str) -> list[Transfer]:
    """The bank-file transfers a pain.002 transaction id names: the one whose reference it is; failing that,
    for a 35-character id, those whose longer reference starts with it (files exported before references
    fitted in 35 characters carried them cut). More than one means the id cannot tell them apart."""
    exact = list(Transfer.objects.filter(psp=external.BANK_FILE, reference=file_id))
    if exact or len(file_id) != FILE_ID_MAX_LENGTH:
        return exact
    candidates = Transfer.objects.filter(psp=external.BANK_FILE, reference__startswith=file_id)
    # startswith is case-insensitive on SQLite: compare again here
    return [t for t in candidates if t.reference.startswith(file_id) and len(t.reference) > len(file_id)]


def _paid_refusal(*, order_pk: int, actor: AbstractBaseUser | None) -> str:
    """Why ``actor`` may not record this order paid (maker-checker on the locked order); "" when it may.

    The check's inputs cannot change before the transfer is applied just after: the order is ``paying``
    (approvals are recorded only before a payout starts or in review) and the threshold is a setting.
    """
    with transaction.atomic(durable=True):
        try:
            services.order_check_payout_allowed(order=services.order_lock(order_pk), actor=actor)
        except services.SecondApproverRequired as exc:
            return exc.message
    return ""


def pain002_import(*, xml: bytes, actor: AbstractBaseUser | None) -> list[StatusLine]:
    """Apply a pain.002 status report: each transaction's status moves its order through the services.

    A success line goes through maker-checker for ``actor`` (the staff user importing): refused, it is
    reported as not applied and nothing changes. Raises BankFileInvalid for an unreadable report.
    """
    root = _parse_untrusted(xml)
    lines: list[StatusLine] = []
    for tx in (el for el in root.iter() if _local(el.tag) == "TxInfAndSts"):
        reference = _find_text(tx, ["OrgnlEndToEndId"]) or _find_text(tx, ["OrgnlInstrId"])
        status = _find_text(tx, ["TxSts"])
        reason = _find_text(tx, ["StsRsnInf", "Rsn", "Cd"]) or _find_text(tx, ["StsRsnInf", "AddtlInf"])
        transfers = _transfers_named(reference)
        if len(transfers) != 1:
            outcome = "ambiguous reference" if transfers else "unknown reference"
            lines.append(StatusLine(reference, status, reason, outcome))
            continue
        (transfer,) = transfers
        if status in SUCCESS_CODES:
            refusal = _paid_refusal(order_pk=transfer.order_id, actor=actor)
            if refusal:
                lines.append(StatusLine(reference, status, reason, f"not applied: {refusal}", applied=False))
                continue
            result = PayoutResult(
                reference=transfer.reference,
                status=PayoutStatus.SUCCEEDED,
                psp_transaction_id=transfer.reference,  # the txId the pending fulfil reported
            )
        elif status in FAILURE_CODES:
            message = f"Bank rejected the transfer ({reason or 'no reason given'})"
            result = PayoutResult(
                reference=transfer.reference,
                status=PayoutStatus.FAILED,
                failure_reason=FailureReason.OTHER,
                failure_message=message,
            )
        else:
            lines.append(StatusLine(reference, status, reason, "no change (not final)"))
            continue
        services.order_apply_psp_answer(
            transfer_pk=transfer.pk, answer=psp_services.PspAnswer.of(result), actor=actor
        )
        transfer.refresh_from_db(fields=["status"])
        lines.append(StatusLine(reference, status, reason, f"transfer {transfer.status}"))
    logger.info("bank_file.status_imported", extra={"lines": len(lines)})
    return lines
