"""ISO 20022 manual batches: a pain.001 file valid against the official XSD; pain.002 applied by services."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from balances import selectors as balance_selectors
from orders import iso20022
from orders.models import Order, OrderStatus, OutboxMessage
from orders.tests.test_admin import held_order, in_roles, money_and_reports
from provision.testing import admin_client
from psp.models import Transfer, TransferStatus

pytestmark = pytest.mark.django_db
DEBTOR = iso20022.Debtor("Provider Ltd", "0987654321", "ABNGNGLA")


def payer_client() -> Client:
    user = User.objects.create_user(username="payer", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="payer"))
    return admin_client(user)


def pain002(*lines: tuple[str, str, str]) -> bytes:
    txs = "".join(
        f"<TxInfAndSts><OrgnlEndToEndId>{ref}</OrgnlEndToEndId><TxSts>{sts}</TxSts>"
        + (f"<StsRsnInf><Rsn><Cd>{reason}</Cd></Rsn></StsRsnInf>" if reason else "")
        + "</TxInfAndSts>"
        for ref, sts, reason in lines
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>'
        "<GrpHdr><MsgId>STS1</MsgId><CreDtTm>2026-11-22T10:00:00</CreDtTm></GrpHdr>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>X</OrgnlPmtInfId>{txs}</OrgnlPmtInfAndSts>"
        "</CstmrPmtStsRpt></Document>"
    ).encode()


def test_export_is_valid_pain001_and_moves_orders_to_paying_once() -> None:
    orders = [held_order(), held_order(account_name="Zoë <Ade> & Co", memo="Inv #7 & <more>")]

    xml, exported = iso20022.bank_file_export(order_pks=[o.pk for o in orders], debtor=DEBTOR, actor=None)

    assert iso20022.pain001_validate(xml) == []
    assert b"<NbOfTxs>2</NbOfTxs>" in xml
    assert b"<CtrlSum>7500.00</CtrlSum>" in xml
    assert "Zoë &lt;Ade&gt; &amp; Co".encode() in xml
    assert b'<InstdAmt Ccy="NGN">3750.00</InstdAmt>' in xml
    assert {o.status for o in Order.objects.all()} == {OrderStatus.PAYING}
    assert Transfer.objects.filter(psp="bank_file", status=TransferStatus.PENDING).count() == 2
    assert len(exported) == 2


def test_an_order_cannot_be_exported_twice_or_paid_by_psp_after_export() -> None:
    order = held_order()
    iso20022.bank_file_export(order_pks=[order.pk], debtor=DEBTOR, actor=None)

    with pytest.raises(iso20022.services.OrderTransitionNotAllowed):
        iso20022.bank_file_export(order_pks=[order.pk], debtor=DEBTOR, actor=None)

    assert Transfer.objects.filter(order=order).count() == 1


def test_held_order_past_its_approval_deadline_cannot_be_exported() -> None:
    order = held_order()
    Order.objects.filter(pk=order.pk).update(hold_until=timezone.now() - timedelta(seconds=1))
    before = money_and_reports(order)

    with pytest.raises(iso20022.services.OrderTransitionNotAllowed) as refused:
        iso20022.bank_file_export(order_pks=[order.pk], debtor=DEBTOR, actor=None)

    assert refused.value.code == "hold_expired"
    assert money_and_reports(order) == before
    assert not Transfer.objects.filter(order=order).exists()
    assert iso20022.services.order_expire_due() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED


def test_invalid_document_is_reported_by_the_xsd() -> None:
    problems = iso20022.pain001_validate(
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>'
    )

    assert problems


def test_status_report_marks_accepted_paid_and_rejected_failed() -> None:
    paid, rejected = held_order(), held_order()
    iso20022.bank_file_export(order_pks=[paid.pk, rejected.pk], debtor=DEBTOR, actor=None)
    ref = {t.order_id: t.reference for t in Transfer.objects.all()}

    lines = iso20022.pain002_import(
        xml=pain002((ref[paid.pk], "ACSC", ""), (ref[rejected.pk], "RJCT", "AC04")), actor=None
    )

    paid.refresh_from_db()
    rejected.refresh_from_db()
    assert [line.outcome for line in lines] == ["transfer succeeded", "transfer failed"]
    assert paid.status == OrderStatus.PAID
    assert (rejected.status, rejected.cancel_reason) == (
        OrderStatus.CANCELLED,
        "Bank rejected the transfer (AC04)",
    )
    assert OutboxMessage.objects.get(order=rejected, dedupe_key__endswith=":failed").payload[
        "validationError"
    ] == ("Bank rejected the transfer (AC04)")
    balance = balance_selectors.balance_get(currency="NGN")
    assert (balance.total, balance.reserved) == (Decimal("196250"), Decimal("0"))


def ids_in_file(xml: bytes) -> list[str]:
    """The EndToEndId of each transaction of a pain.001 file, in file order."""
    return [found.decode() for found in re.findall(rb"<EndToEndId>([^<]*)</EndToEndId>", xml)]


def test_status_report_finds_each_transfer_by_the_id_written_in_the_file() -> None:
    order = held_order(order_id="559028af-6e15-4b21-bab5-052a248db249")
    xml, _exported = iso20022.bank_file_export(order_pks=[order.pk], debtor=DEBTOR, actor=None)
    (written,) = ids_in_file(xml)

    lines = iso20022.pain002_import(xml=pain002((written, "ACSC", "")), actor=None)

    order.refresh_from_db()
    assert [line.outcome for line in lines] == ["transfer succeeded"]
    assert order.status == OrderStatus.PAID
    assert written == Transfer.objects.get(order=order).reference


@pytest.mark.parametrize(
    ("order_id", "other_id"),
    [
        ("a" * 32 + "-first", "a" * 32 + "-second"),
        ("order-42", "order42"),
        ("559028af-6e15-4b21-bab5-052a248db249", "559028af6e154b21bab5052a248db249"),
    ],
)
def test_orders_whose_ids_differ_only_past_32_characters_or_in_dashes_are_both_exported_and_paid(
    order_id: str, other_id: str
) -> None:
    order, other = held_order(order_id=order_id), held_order(order_id=other_id)

    xml, _exported = iso20022.bank_file_export(order_pks=[order.pk, other.pk], debtor=DEBTOR, actor=None)
    written = ids_in_file(xml)
    lines = iso20022.pain002_import(
        xml=pain002(*((reference, "ACSC", "") for reference in written)), actor=None
    )

    assert len(set(written)) == 2
    assert [line.outcome for line in lines] == ["transfer succeeded", "transfer succeeded"]
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.PAID}


def test_status_report_of_a_file_exported_before_references_fitted_finds_the_transfer_by_the_cut_id() -> None:
    order = held_order(order_id="559028af-6e15-4b21-bab5-052a248db249")
    iso20022.bank_file_export(order_pks=[order.pk], debtor=DEBTOR, actor=None)
    # set-up only: the reference the exporter used to store; its file carried the first 35 characters
    Transfer.objects.filter(order=order).update(reference="pn-559028af6e154b21bab5052a248db249-1")

    lines = iso20022.pain002_import(
        xml=pain002(("pn-559028af6e154b21bab5052a248db249", "ACSC", "")), actor=None
    )

    order.refresh_from_db()
    assert [line.outcome for line in lines] == ["transfer succeeded"]
    assert order.status == OrderStatus.PAID


def test_status_report_cut_id_matching_two_old_transfers_changes_neither() -> None:
    orders = [held_order(), held_order()]
    iso20022.bank_file_export(order_pks=[o.pk for o in orders], debtor=DEBTOR, actor=None)
    for attempt, order in enumerate(orders, start=1):  # set-up only: two old references, one cut id
        Transfer.objects.filter(order=order).update(reference=f"pn-{'a' * 32}-{attempt}")

    lines = iso20022.pain002_import(xml=pain002((f"pn-{'a' * 32}", "ACSC", "")), actor=None)

    assert [line.outcome for line in lines] == ["ambiguous reference"]
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.PAYING}


def test_status_report_with_entities_is_refused() -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Document><CstmrPmtStsRpt/></Document>'

    with pytest.raises(iso20022.BankFileInvalid):
        iso20022.pain002_import(xml=evil, actor=None)


def test_admin_export_downloads_the_file_and_import_applies_the_report() -> None:
    client = payer_client()
    order = held_order()

    response = client.post(
        "/admin/orders/order/",
        {
            "action": "export_bank_file",
            "_selected_action": [order.pk],
            "apply": "Confirm",
            "debtor_name": "Provider Ltd",
            "debtor_account": "0987654321",
        },
    )

    assert response["Content-Type"] == "application/xml"
    assert iso20022.pain001_validate(response.content) == []
    reference = Transfer.objects.get(order=order).reference
    upload = SimpleUploadedFile("sts.xml", pain002((reference, "ACCC", "")))
    page = client.post("/admin/orders/order/import-status/", {"report": upload}, follow=True)
    assert b"Applied 1 transaction status(es)." in page.content
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_import_page_needs_the_pay_permission(client: Any) -> None:
    user = User.objects.create_user(username="viewer", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    client.force_login(user)

    response = client.get("/admin/orders/order/import-status/")

    assert response.status_code == 403


def import_report(client: Client, *lines: tuple[str, str, str]) -> Any:
    upload = SimpleUploadedFile("sts.xml", pain002(*lines))
    return client.post("/admin/orders/order/import-status/", {"report": upload}, follow=True)


def test_status_report_success_imported_alone_is_not_applied_and_changes_nothing(settings: Any) -> None:
    order = held_order()
    iso20022.bank_file_export(order_pks=[order.pk], debtor=DEBTOR, actor=None)  # before the limit was set
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    transfer = Transfer.objects.get(order=order)
    before = money_and_reports(order)

    page = import_report(payer_client(), (transfer.reference, "ACSC", ""))

    transfer.refresh_from_db()
    assert b"not applied: Payouts above 1000 NGN need an approval first" in page.content
    assert b"1 transaction status(es) not applied" in page.content
    assert money_and_reports(order) == before
    assert (order.status, transfer.status) == (OrderStatus.PAYING, TransferStatus.PENDING)


def test_status_report_success_needs_an_importer_other_than_the_maker(settings: Any) -> None:
    settings.MAKER_CHECKER_ABOVE = {"NGN": Decimal("1000")}
    order = held_order()
    maker, exporter = in_roles("maria", "operator", "payer"), in_roles("erin", "payer")
    maker.post(
        "/admin/orders/order/",
        {"action": "record_approval", "_selected_action": [order.pk], "apply": "Confirm"},
    )
    exporter.post(
        "/admin/orders/order/",
        {
            "action": "export_bank_file",
            "_selected_action": [order.pk],
            "apply": "Confirm",
            "debtor_name": "Provider Ltd",
            "debtor_account": "0987654321",
        },
    )
    transfer = Transfer.objects.get(order=order)
    exported = money_and_reports(order)

    by_maker = import_report(maker, (transfer.reference, "ACCC", ""))
    after_maker = money_and_reports(order)
    by_exporter = import_report(exporter, (transfer.reference, "ACCC", ""))

    assert b"not applied: The user who approved this payout cannot also pay it" in by_maker.content
    assert after_maker == exported
    assert b"Applied 1 transaction status(es)." in by_exporter.content
    status, ledger, reports, _balance = money_and_reports(order)
    assert status == OrderStatus.PAID
    assert ledger == ["RESERVE", "DEBIT"]
    assert f"fulfil:{order.order_id}:success" in reports
