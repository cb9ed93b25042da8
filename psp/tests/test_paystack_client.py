"""PaystackAdapter against a real local HTTP server answering as protocol/paystack-transfers.md documents."""

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from werkzeug import Request, Response

from psp.base import (
    AccountName,
    Bank,
    DuplicateReference,
    FailureReason,
    PayoutRequest,
    PayoutStatus,
    PspBalanceReading,
    PspRejected,
    PspUnavailable,
    Recipient,
    WebhookSignatureInvalid,
)
from psp.clients import http
from psp.clients.paystack import (
    PaystackAdapter,
    PaystackConfig,
    failure_reason_from_text,
    from_subunits,
    to_subunits,
    webhook_signature,
)
from psp.recipients import RecipientKey

SECRET = "sk_test_4f8e2a9c1b7d3e5f6a0b"
ORDER_KEY = "559028af-6e15-4b21-bab5-052a248db249"
REF = "pn-559028af6e154b21bab5052a248db249-1"
NUBAN = "0123456789"
RCP = "RCP_1a2b3c4d5e6f7g"
VERIFY = f"/transfer/verify/{REF}"
JSON = "application/json"


class MemoryStore:
    def __init__(self):
        self.codes: dict[RecipientKey, str] = {}

    def get(self, key):
        return self.codes.get(key)

    def put(self, key, code):
        self.codes.setdefault(key, code)


def make_adapter(
    httpserver, *, timeout=Decimal("5"), store=None, secret=SECRET, currencies=("NGN", "GHS", "KES")
):
    return PaystackAdapter(
        PaystackConfig(
            base_url=httpserver.url_for("/"),
            secret_key=secret,
            timeout=timeout,
            connect_timeout=Decimal("2"),
            currencies=currencies,
        ),
        recipient_store=store if store is not None else MemoryStore(),
    )


def ngn_request(amount="15000.00", psp_institution="nuban:044"):
    return PayoutRequest(
        reference=REF,
        amount=Decimal(amount),
        currency="NGN",
        recipient=Recipient(
            institution="ABNGNGLA",
            account_identifier=NUBAN,
            account_name="Adaeze Okafor",
            psp_institution=psp_institution,
        ),
        narration="Payout 559028af",
    )


def ghs_request(*, psp_institution, account, amount="250.50"):
    return PayoutRequest(
        reference=REF,
        amount=Decimal(amount),
        currency="GHS",
        recipient=Recipient(
            institution="",
            account_identifier=account,
            account_name="Kofi Mensah",
            psp_institution=psp_institution,
        ),
        narration="Payout",
    )


def transfer(status="pending", *, reference=REF, amount=1500000, **extra):
    return {
        "amount": amount,
        "currency": "NGN",
        "domain": "live",
        "failures": None,
        "id": 37272792,
        "reason": "Payout 559028af",
        "reference": reference,
        "source": "balance",
        "status": status,
        "transfer_code": "TRF_1ptvuv321ahaa7q",
        "titan_code": None,
        "transferred_at": None,
        "createdAt": "2026-12-03T10:00:00.000Z",
        "updatedAt": "2026-12-03T10:00:05.000Z",
        **extra,
    }


def ok(data, message="Transfer has been queued"):
    return {"status": True, "message": message, "data": data}


def refused(message):
    return {"status": False, "message": message}


def recipient_created(code=RCP):
    return ok(
        {"recipient_code": code, "type": "nuban", "active": True}, "Transfer recipient created successfully"
    )


def requests_to(httpserver, method, path):
    return [req for req, _ in httpserver.log if req.method == method and req.path == path]


def wait_until_logged(httpserver, method, path, count=1):
    """pytest-httpserver logs a request after its handler returns: wait for a slow handler to finish."""
    deadline = time.monotonic() + 10
    while len(requests_to(httpserver, method, path)) < count:
        assert time.monotonic() < deadline, "the slow request never completed"
        time.sleep(0.01)


def sent_json(request):
    return json.loads(request.get_data(), parse_float=Decimal)


def expect_recipient(httpserver, code=RCP):
    httpserver.expect_request("/transferrecipient", method="POST").respond_with_json(
        recipient_created(code), status=201
    )


@pytest.fixture(autouse=True)
def _server_saw_only_expected_requests(httpserver):
    yield
    httpserver.check_assertions()
    httpserver.check_handler_errors()


# --- money and references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "subunits"),
    [("15000", 1500000), ("15000.00", 1500000), ("0.01", 1), ("736.10", 73610), ("99999999.99", 9999999999)],
)
def test_amounts_convert_to_integer_subunits_exactly(amount, subunits):
    assert to_subunits(Decimal(amount)) == subunits
    assert from_subunits(subunits) == Decimal(amount).quantize(Decimal("0.01"))


@pytest.mark.parametrize("amount", ["736.155", "0.001", "0", "-5", "NaN", "Infinity"])
def test_amounts_that_do_not_convert_exactly_are_refused(amount):
    with pytest.raises(PspRejected):
        to_subunits(Decimal(amount))


def test_subunit_amounts_that_are_not_whole_are_not_read():
    assert from_subunits(Decimal("150.5")) is None
    assert from_subunits("abc") is None
    assert from_subunits(None) is None


def test_make_reference_is_lowercase_derived_from_the_order_and_attempt(httpserver):
    adapter = make_adapter(httpserver)

    reference = adapter.make_reference(order_key=ORDER_KEY, attempt=1)

    assert reference == REF
    assert adapter.make_reference(order_key=ORDER_KEY, attempt=2) == "pn-559028af6e154b21bab5052a248db249-2"
    assert 16 <= len(reference) <= 50


def test_make_reference_of_any_other_order_id_is_a_hash_within_the_limits(httpserver):
    adapter = make_adapter(httpserver)
    order_key = "ORDER #42 / Upper Case and spaces and a very long tail that would not fit anywhere"

    reference = adapter.make_reference(order_key=order_key, attempt=32767)

    assert reference == "pn-h" + hashlib.sha256(order_key.encode()).hexdigest()[:26] + "-32767"
    assert reference == reference.lower()
    assert 16 <= len(reference) <= 50


# --- recipients and the transfer ------------------------------------------------------------------


def test_first_payout_creates_the_recipient_then_posts_the_transfer_in_kobo(httpserver):
    httpserver.expect_request(
        "/transferrecipient",
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}"},
        json={
            "type": "nuban",
            "name": "Adaeze Okafor",
            "account_number": NUBAN,
            "bank_code": "044",
            "currency": "NGN",
        },
    ).respond_with_json(recipient_created(), status=201)
    httpserver.expect_request(
        "/transfer",
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}"},
        json={
            "source": "balance",
            "amount": 1500000,
            "recipient": RCP,
            "reference": REF,
            "reason": "Payout 559028af",
            "currency": "NGN",
        },
    ).respond_with_json(ok(transfer("pending")))
    store = MemoryStore()

    result = make_adapter(httpserver, store=store).initiate_payout(ngn_request())

    assert result.status is PayoutStatus.PENDING
    assert result.reference == REF
    assert result.amount == Decimal("15000.00")
    assert result.psp_transaction_id == "TRF_1ptvuv321ahaa7q"
    assert result.failure_reason is None
    assert store.codes == {
        RecipientKey(kind="nuban", institution_code="044", account=NUBAN, currency="NGN"): RCP
    }


def test_the_recipient_is_created_once_per_account_and_reused(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(ok(transfer("pending")))
    adapter = make_adapter(httpserver)

    adapter.initiate_payout(ngn_request())
    adapter.initiate_payout(ngn_request())

    assert len(requests_to(httpserver, "POST", "/transferrecipient")) == 1
    assert [sent_json(r)["recipient"] for r in requests_to(httpserver, "POST", "/transfer")] == [RCP, RCP]


def test_a_bare_bank_code_is_the_currencys_bank_type(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(ok(transfer("pending")))

    make_adapter(httpserver).initiate_payout(ngn_request(psp_institution="044"))

    (sent,) = requests_to(httpserver, "POST", "/transferrecipient")
    assert (sent_json(sent)["type"], sent_json(sent)["bank_code"]) == ("nuban", "044")


def test_ghs_mobile_money_recipient_is_the_local_phone_and_the_operator_code(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(
        ok(transfer("pending", amount=25050))
    )

    result = make_adapter(httpserver).initiate_payout(
        ghs_request(psp_institution="mobile_money:MTN", account="+233 55 123 4987")
    )

    (recipient,) = requests_to(httpserver, "POST", "/transferrecipient")
    assert sent_json(recipient) == {
        "type": "mobile_money",
        "name": "Kofi Mensah",
        "account_number": "0551234987",
        "bank_code": "MTN",
        "currency": "GHS",
    }
    (posted,) = requests_to(httpserver, "POST", "/transfer")
    assert (sent_json(posted)["amount"], sent_json(posted)["currency"]) == (25050, "GHS")
    assert result.amount == Decimal("250.50")


def test_ghs_bank_and_kes_bank_recipients_use_ghipss_and_kepss(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(ok(transfer("pending")))
    adapter = make_adapter(httpserver)

    adapter.initiate_payout(ghs_request(psp_institution="ghipss:GH040100", account="1441000123456"))
    adapter.initiate_payout(
        PayoutRequest(
            reference=REF,
            amount=Decimal("1000"),
            currency="KES",
            recipient=Recipient(
                institution="KCBLKENX", account_identifier="1100 2233 44", psp_institution="bank:01"
            ),
        )
    )

    sent = [sent_json(r) for r in requests_to(httpserver, "POST", "/transferrecipient")]
    assert [(s["type"], s["bank_code"], s["account_number"], s["currency"]) for s in sent] == [
        ("ghipss", "GH040100", "1441000123456", "GHS"),
        ("kepss", "01", "1100223344", "KES"),
    ]
    assert sent[1]["name"] == "Payout recipient"  # the order had no name: Paystack requires one


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            ngn_request(psp_institution="mobile_money:MTN"),
            FailureReason.UNSUPPORTED,
        ),  # no NGN mobile money here
        (ngn_request(psp_institution=""), FailureReason.UNSUPPORTED),  # not mapped
        (ngn_request(psp_institution="basa:632005"), FailureReason.UNSUPPORTED),
        (ngn_request(amount="100.005"), FailureReason.UNSUPPORTED),  # does not convert to kobo
        (ghs_request(psp_institution="momo:MTN", account="12345"), FailureReason.RECIPIENT_INVALID),
    ],
)
def test_payouts_paystack_cannot_take_are_refused_before_any_request(httpserver, request_, reason):
    with pytest.raises(PspRejected) as refusal:
        make_adapter(httpserver).initiate_payout(request_)

    assert refusal.value.reason is reason
    assert httpserver.log == []


def test_a_currency_not_configured_is_refused_before_any_request(httpserver):
    adapter = make_adapter(httpserver, currencies=("NGN",))

    with pytest.raises(PspRejected) as refusal:
        adapter.initiate_payout(ghs_request(psp_institution="ghipss:GH040100", account="1441000123456"))

    assert refusal.value.reason is FailureReason.UNSUPPORTED
    assert adapter.supports(currency="GHS", institution="GHCBGHAC") is False
    assert adapter.supports(currency="NGN", institution="ABNGNGLA") is True
    assert httpserver.log == []


def test_a_refused_recipient_sends_no_transfer(httpserver):
    httpserver.expect_request("/transferrecipient", method="POST").respond_with_json(
        refused("Cannot resolve account"), status=422
    )
    store = MemoryStore()

    with pytest.raises(PspRejected) as refusal:
        make_adapter(httpserver, store=store).initiate_payout(ngn_request())

    assert refusal.value.reason is FailureReason.RECIPIENT_INVALID
    assert requests_to(httpserver, "POST", "/transfer") == []
    assert store.codes == {}


def test_a_recipient_create_without_an_answer_is_unavailable_and_sends_no_transfer(httpserver):
    httpserver.expect_request("/transferrecipient", method="POST").respond_with_json(
        refused("Server error"), status=502
    )
    store = MemoryStore()

    with pytest.raises(PspUnavailable):
        make_adapter(httpserver, store=store).initiate_payout(ngn_request())

    assert requests_to(httpserver, "POST", "/transfer") == []
    assert store.codes == {}


# --- statuses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("pending", PayoutStatus.PENDING),
        ("received", PayoutStatus.PENDING),
        ("otp", PayoutStatus.PENDING),
        ("success", PayoutStatus.SUCCEEDED),
        ("failed", PayoutStatus.FAILED),
        ("abandoned", PayoutStatus.FAILED),
        ("blocked", PayoutStatus.FAILED),
        ("rejected", PayoutStatus.FAILED),
        ("reversed", PayoutStatus.REVERSED),
        ("queued_for_tomorrow", PayoutStatus.UNKNOWN),
        ("", PayoutStatus.UNKNOWN),
    ],
)
def test_verify_maps_every_documented_status(httpserver, wire, status):
    httpserver.expect_request(VERIFY, method="GET").respond_with_json(
        ok(transfer(wire), "Transfer retrieved")
    )

    result = make_adapter(httpserver).get_payout(reference=REF, currency="NGN")

    assert result.status is status
    assert result.reference == REF


def test_a_transfer_waiting_for_an_otp_is_pending_and_logged_as_an_error(httpserver, caplog):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(
        ok(transfer("otp"), "Transfer requires OTP to continue")
    )
    caplog.set_level(logging.INFO)

    result = make_adapter(httpserver).initiate_payout(ngn_request())

    assert result.status is PayoutStatus.PENDING
    assert result.raw["status"] == "otp"
    assert [r.levelname for r in caplog.records if r.msg == "paystack.payout.otp_required"] == ["ERROR"]


def test_a_successful_transfer_carries_the_transfer_code_and_time(httpserver):
    data = transfer(
        "success",
        transferred_at="2026-12-03T10:00:04.447Z",
        session={"provider": "nip", "id": "090405261203100004123456789012"},
    )
    httpserver.expect_request(VERIFY).respond_with_json(ok(data, "Transfer retrieved"))

    result = make_adapter(httpserver).get_payout(reference=REF, currency="NGN")

    assert result.status is PayoutStatus.SUCCEEDED
    assert result.psp_transaction_id == "TRF_1ptvuv321ahaa7q"
    assert result.completed_at == datetime(2026, 12, 3, 10, 0, 4, 447000, tzinfo=UTC)
    assert result.amount == Decimal("15000.00")
    assert result.fee is None


def test_a_failed_transfer_carries_paystacks_reason(httpserver):
    httpserver.expect_request(VERIFY).respond_with_json(
        ok(transfer("failed", gateway_response="Account closed"), "Transfer retrieved")
    )

    result = make_adapter(httpserver).get_payout(reference=REF, currency="NGN")

    assert (result.status, result.failure_reason, result.failure_message) == (
        PayoutStatus.FAILED,
        FailureReason.RECIPIENT_INVALID,
        "Account closed",
    )


def test_an_abandoned_transfer_says_why(httpserver):
    httpserver.expect_request(VERIFY).respond_with_json(ok(transfer("abandoned"), "Transfer retrieved"))

    result = make_adapter(httpserver).get_payout(reference=REF, currency="NGN")

    assert result.status is PayoutStatus.FAILED
    assert "OTP" in result.failure_message


def test_an_answer_about_another_reference_is_unknown(httpserver):
    httpserver.expect_request(VERIFY).respond_with_json(
        ok(transfer("success", reference="pn-someone-else-000001"))
    )

    result = make_adapter(httpserver).get_payout(reference=REF, currency="NGN")

    assert result.status is PayoutStatus.UNKNOWN


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, refused("Transfer not found")),
        (404, refused("Not Found")),
        (404, None),
        (400, refused("Transfer not found")),
    ],
)
def test_verify_of_an_unknown_reference_is_not_found(httpserver, status, body):
    handler = httpserver.expect_request(VERIFY)
    if body is None:
        handler.respond_with_data("", status=status)
    else:
        handler.respond_with_json(body, status=status)

    result = make_adapter(httpserver).get_payout(reference=REF, currency="NGN")

    assert result.status is PayoutStatus.NOT_FOUND


def test_verify_refused_for_another_reason_is_a_refusal_not_a_not_found(httpserver):
    httpserver.expect_request(VERIFY).respond_with_json(refused("Invalid key"), status=401)

    with pytest.raises(PspRejected):
        make_adapter(httpserver).get_payout(reference=REF, currency="NGN")


def test_references_paystack_would_refuse_are_never_sent(httpserver):
    with pytest.raises(PspRejected):
        make_adapter(httpserver).get_payout(reference="PN-Upper-Case-Reference-1", currency="NGN")
    with pytest.raises(PspRejected):
        make_adapter(httpserver).get_payout(reference="pn-short-1", currency="NGN")

    assert httpserver.log == []


# --- refusals, duplicates and unknown outcomes ----------------------------------------------------


def test_a_reference_already_used_is_answered_with_what_paystack_has(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(
        refused("This reference has already been used on a prior transfer"), status=400
    )
    httpserver.expect_request(VERIFY).respond_with_json(ok(transfer("success"), "Transfer retrieved"))

    result = make_adapter(httpserver).initiate_payout(ngn_request())

    assert result.status is PayoutStatus.SUCCEEDED
    assert len(requests_to(httpserver, "POST", "/transfer")) == 1


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "This reference has already been used on a prior transfer"),
        (409, "Conflict"),
        (400, "Duplicate reference"),
    ],
)
def test_a_duplicate_paystack_cannot_show_yet_is_a_duplicate_reference(httpserver, status, message):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(refused(message), status=status)
    httpserver.expect_request(VERIFY).respond_with_json(refused("Transfer not found"), status=404)

    with pytest.raises(DuplicateReference) as duplicate:
        make_adapter(httpserver).initiate_payout(ngn_request())

    assert duplicate.value.http_status == status


def test_a_refusal_in_any_words_is_overruled_by_a_transfer_paystack_shows(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(
        refused("Your balance is not enough to fulfil this request"), status=400
    )
    httpserver.expect_request(VERIFY).respond_with_json(ok(transfer("pending"), "Transfer retrieved"))

    result = make_adapter(httpserver).initiate_payout(ngn_request())

    assert result.status is PayoutStatus.PENDING


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Your balance is not enough to fulfil this request", FailureReason.INSUFFICIENT_FUNDS),
        ("Account closed", FailureReason.RECIPIENT_INVALID),
        ("Invalid recipient", FailureReason.RECIPIENT_INVALID),
        (
            "Sorry, we can't make the transfer to this recipient at the moment",
            FailureReason.DESTINATION_UNAVAILABLE,
        ),
        ("Bank code is invalid", FailureReason.UNSUPPORTED),
        ("Transfer amount exceeds the maximum limit", FailureReason.LIMIT_EXCEEDED),
        ("Your reference contains illegal special characters", FailureReason.OTHER),
    ],
)
def test_a_refusal_with_no_transfer_behind_it_is_rejected_with_the_mapped_reason(httpserver, message, reason):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(refused(message), status=400)
    httpserver.expect_request(VERIFY).respond_with_json(refused("Transfer not found"), status=404)

    with pytest.raises(PspRejected) as refusal:
        make_adapter(httpserver).initiate_payout(ngn_request())

    assert type(refusal.value) is PspRejected
    assert refusal.value.reason is reason
    assert refusal.value.http_status == 400


def test_a_refusal_whose_reference_cannot_be_read_back_is_an_unknown_outcome(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(
        refused("Account closed"), status=400
    )
    httpserver.expect_request(VERIFY).respond_with_json(refused("Server error"), status=500)

    with pytest.raises(PspUnavailable):
        make_adapter(httpserver).initiate_payout(ngn_request())


def test_a_bad_key_is_rejected_without_a_read_back(httpserver):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(
        refused("Invalid key"), status=401
    )

    with pytest.raises(PspRejected) as refusal:
        make_adapter(httpserver).initiate_payout(ngn_request())

    assert refusal.value.http_status == 401
    assert requests_to(httpserver, "GET", VERIFY) == []


@pytest.mark.parametrize(
    "respond",
    [
        lambda h: h.respond_with_json(refused("Internal error"), status=500),
        lambda h: h.respond_with_data("<html>Bad gateway</html>", status=502, content_type="text/html"),
        lambda h: h.respond_with_data("", status=429, headers={"Retry-After": "7"}),
        lambda h: h.respond_with_json(refused("Something went wrong"), status=200),
        lambda h: h.respond_with_data("", status=302, headers={"Location": "/elsewhere"}),
    ],
)
def test_answers_that_say_nothing_about_the_transfer_are_unknown_outcomes(httpserver, respond):
    expect_recipient(httpserver)
    respond(httpserver.expect_request("/transfer", method="POST"))

    with pytest.raises(PspUnavailable):
        make_adapter(httpserver).initiate_payout(ngn_request())

    assert requests_to(httpserver, "GET", VERIFY) == []


def test_429_carries_retry_after(httpserver):
    httpserver.expect_request(VERIFY).respond_with_data("", status=429, headers={"Retry-After": "7"})

    with pytest.raises(PspUnavailable) as unavailable:
        make_adapter(httpserver).get_payout(reference=REF, currency="NGN")

    assert unavailable.value.retry_after == 7.0


def test_timeout_after_paystack_took_the_transfer_is_found_by_reference_without_a_second_post(httpserver):
    committed: list[str] = []

    def create(request: Request) -> Response:
        committed.append(json.loads(request.get_data())["reference"])  # Paystack has it ...
        time.sleep(0.6)  # ... and answers after the client gave up
        return Response(json.dumps(ok(transfer("pending"))), content_type=JSON)

    def verify(request: Request) -> Response:
        if REF not in committed:
            return Response(json.dumps(refused("Transfer not found")), status=404, content_type=JSON)
        return Response(json.dumps(ok(transfer("success"))), content_type=JSON)

    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_handler(create)
    httpserver.expect_request(VERIFY).respond_with_handler(verify)
    adapter = make_adapter(httpserver, timeout=Decimal("0.2"))

    with pytest.raises(PspUnavailable) as unavailable:
        adapter.initiate_payout(ngn_request())
    wait_until_logged(httpserver, "POST", "/transfer")  # the server answers one request at a time
    found = adapter.get_payout(reference=REF, currency="NGN")

    assert unavailable.value.reason is FailureReason.TIMEOUT
    assert found.status is PayoutStatus.SUCCEEDED
    assert committed == [REF]
    assert len(requests_to(httpserver, "POST", "/transfer")) == 1


# --- account names ----------------------------------------------------------------------------------


def test_resolve_account_reads_the_nuban_holders_name(httpserver):
    httpserver.expect_request(
        "/bank/resolve", method="GET", query_string={"account_number": NUBAN, "bank_code": "044"}
    ).respond_with_json(
        ok(
            {"account_number": NUBAN, "account_name": "ADAEZE OKAFOR", "bank_id": 1},
            "Account number resolved",
        )
    )

    name = make_adapter(httpserver).resolve_account(recipient=ngn_request().recipient, currency="NGN")

    assert name == AccountName(account_identifier=NUBAN, account_name="ADAEZE OKAFOR")


def test_a_nuban_paystack_cannot_resolve_is_an_invalid_recipient(httpserver):
    httpserver.expect_request("/bank/resolve").respond_with_json(
        refused("Could not resolve account name. Check parameters or try again."), status=422
    )

    with pytest.raises(PspRejected) as refusal:
        make_adapter(httpserver).resolve_account(recipient=ngn_request().recipient, currency="NGN")

    assert refusal.value.reason is FailureReason.RECIPIENT_INVALID


def test_a_ghanaian_account_paystack_will_not_resolve_is_unsupported_not_invalid(httpserver):
    httpserver.expect_request("/bank/resolve").respond_with_json(refused("Unknown bank code"), status=400)
    recipient = ghs_request(psp_institution="mobile_money:MTN", account="0551234987").recipient

    with pytest.raises(PspRejected) as refusal:
        make_adapter(httpserver).resolve_account(recipient=recipient, currency="GHS")

    assert refusal.value.reason is FailureReason.UNSUPPORTED
    (sent,) = httpserver.log
    assert (sent[0].args["account_number"], sent[0].args["bank_code"]) == ("0551234987", "MTN")


def test_a_ghanaian_name_paystack_does_resolve_is_used(httpserver):
    httpserver.expect_request("/bank/resolve").respond_with_json(
        ok({"account_number": "0551234987", "account_name": "KOFI MENSAH"})
    )
    recipient = ghs_request(psp_institution="mobile_money:MTN", account="0551234987").recipient

    name = make_adapter(httpserver).resolve_account(recipient=recipient, currency="GHS")

    assert name.account_name == "KOFI MENSAH"


# --- balances and bank lists ------------------------------------------------------------------------


def test_balances_are_read_from_subunits_for_the_configured_currencies(httpserver):
    httpserver.expect_request("/balance", method="GET").respond_with_data(
        '{"status": true, "message": "Balances retrieved", "data": ['
        '{"currency": "NGN", "balance": 250000075}, {"currency": "GHS", "balance": 1000},'
        ' {"currency": "ZAR", "balance": 5000}, {"currency": "KES", "balance": 12.5}]}',
        content_type=JSON,
    )

    readings = make_adapter(httpserver).get_balances()

    assert readings == [
        PspBalanceReading(currency="NGN", total=Decimal("2500000.75"), available=Decimal("2500000.75")),
        PspBalanceReading(currency="GHS", total=Decimal("10.00"), available=Decimal("10.00")),
    ]


def bank(name, code, kind, **extra):
    row = {
        "name": name,
        "code": code,
        "type": kind,
        "active": True,
        "is_deleted": False,
        "supports_transfer": True,
    }
    return {**row, **extra}


def test_list_banks_gives_transfer_capable_rows_with_their_recipient_type(httpserver):
    httpserver.expect_request(
        "/bank", method="GET", query_string={"currency": "GHS", "perPage": "100", "use_cursor": "true"}
    ).respond_with_json(
        {
            "status": True,
            "message": "Banks retrieved",
            "data": [
                bank("GCB Bank Limited", "GH040100", "ghipss"),
                bank(" ECOBANK GHANA ", "GH130100", "ghipps"),  # the spec's other spelling
                bank("MTN", "MTN", "mobile_money"),
                bank("Closed Bank", "GH999999", "ghipss", active=False),
                bank("Deleted Bank", "GH888888", "ghipss", is_deleted=True),
                bank("Collections Only", "GH777777", "ghipss", supports_transfer=False),
                bank("South African Bank", "632005", "basa"),
                {"name": "No code", "type": "ghipss"},
                "not an object",
            ],
            "meta": {"next": None},
        }
    )

    banks = make_adapter(httpserver).list_banks(currency="GHS")

    assert banks == [
        Bank(code="ghipss:GH040100", name="GCB Bank Limited", country="gh"),
        Bank(code="ghipss:GH130100", name="ECOBANK GHANA", country="gh"),
        Bank(code="mobile_money:MTN", name="MTN", country="gh"),
    ]


def test_list_banks_follows_the_cursor(httpserver):
    httpserver.expect_request(
        "/bank", query_string={"currency": "NGN", "perPage": "100", "use_cursor": "true"}
    ).respond_with_json(
        {
            "status": True,
            "message": "",
            "data": [bank("Access Bank", "044", "nuban")],
            "meta": {"next": "YmFuazox"},
        }
    )
    httpserver.expect_request(
        "/bank", query_string={"currency": "NGN", "perPage": "100", "use_cursor": "true", "next": "YmFuazox"}
    ).respond_with_json(
        {"status": True, "message": "", "data": [bank("Kuda Bank", 50211, "nuban")], "meta": {"next": None}}
    )

    banks = make_adapter(httpserver).list_banks(currency="NGN")

    assert [b.code for b in banks] == ["nuban:044", "nuban:50211"]


def test_list_banks_for_a_currency_not_served_is_unsupported_without_a_request(httpserver):
    with pytest.raises(PspRejected) as refusal:
        make_adapter(httpserver).list_banks(currency="ZAR")

    assert refusal.value.reason is FailureReason.UNSUPPORTED
    assert httpserver.log == []


# --- webhooks -----------------------------------------------------------------------------------------


def webhook(event="transfer.success", status="success", reference=REF):
    return json.dumps({"event": event, "data": transfer(status, reference=reference)}).encode()


def test_a_signed_transfer_webhook_names_the_reference_and_hints_the_status(httpserver):
    body = webhook("transfer.reversed", "reversed")

    notice = make_adapter(httpserver).parse_webhook(
        body=body, headers={"x-paystack-signature": webhook_signature(body=body, secret_key=SECRET)}
    )

    assert (notice.event_type, notice.reference, notice.status) == (
        "transfer.reversed",
        REF,
        PayoutStatus.REVERSED,
    )
    assert notice.event_id == hashlib.sha256(f"transfer.reversed|{REF}|reversed".encode()).hexdigest()


def test_the_signature_is_hmac_sha512_of_the_raw_body_with_the_secret_key(httpserver):
    body = webhook()

    expected = hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()

    assert webhook_signature(body=body, secret_key=SECRET) == expected
    notice = make_adapter(httpserver).parse_webhook(
        body=body, headers={"X-Paystack-Signature": expected.upper()}
    )
    assert notice.status is PayoutStatus.SUCCEEDED


def test_the_same_event_twice_has_the_same_id_and_another_status_another(httpserver):
    adapter = make_adapter(httpserver)

    def parse(body):
        return adapter.parse_webhook(
            body=body, headers={"x-paystack-signature": webhook_signature(body=body, secret_key=SECRET)}
        )

    assert parse(webhook()).event_id == parse(webhook()).event_id
    assert parse(webhook()).event_id != parse(webhook("transfer.reversed", "reversed")).event_id


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-paystack-signature": ""},
        {"x-paystack-signature": webhook_signature(body=webhook(), secret_key="sk_test_someone_else")},
        {
            "x-paystack-signature": webhook_signature(
                body=webhook("transfer.failed", "failed"), secret_key=SECRET
            )
        },
        {"x-paystack-signature": hashlib.sha512(webhook()).hexdigest()},  # unkeyed
    ],
)
def test_webhooks_without_a_valid_signature_are_refused(httpserver, headers):
    with pytest.raises(WebhookSignatureInvalid):
        make_adapter(httpserver).parse_webhook(body=webhook(), headers=headers)


def test_a_webhook_about_something_else_names_no_transfer(httpserver):
    body = json.dumps({"event": "charge.success", "data": {"reference": REF, "status": "success"}}).encode()

    notice = make_adapter(httpserver).parse_webhook(
        body=body, headers={"x-paystack-signature": webhook_signature(body=body, secret_key=SECRET)}
    )

    assert (notice.reference, notice.status) == ("", None)


def test_a_signed_body_that_is_not_json_is_refused_without_crashing(httpserver):
    body = b"not json"

    with pytest.raises(PspRejected):
        make_adapter(httpserver).parse_webhook(
            body=body, headers={"x-paystack-signature": webhook_signature(body=body, secret_key=SECRET)}
        )


# --- failure texts and logs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Your balance is not enough to fulfil this request", FailureReason.INSUFFICIENT_FUNDS),
        ("Account closed", FailureReason.RECIPIENT_INVALID),
        ("Recipient account on fraud watch-list", FailureReason.RECIPIENT_INVALID),
        ("Bank code is invalid", FailureReason.UNSUPPORTED),
        ("Transaction timed out", FailureReason.TIMEOUT),
        ("Something else", FailureReason.OTHER),
        ("", FailureReason.OTHER),
    ],
)
def test_failure_texts_map_by_case_insensitive_substring(text, reason):
    assert failure_reason_from_text(text) is reason


def test_logs_mask_the_account_and_never_carry_the_secret_key(httpserver, caplog):
    expect_recipient(httpserver)
    httpserver.expect_request("/transfer", method="POST").respond_with_json(
        refused("Account closed"), status=400
    )
    httpserver.expect_request(VERIFY).respond_with_json(refused("Transfer not found"), status=404)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(PspRejected):
        make_adapter(httpserver).initiate_payout(ngn_request())

    logged = [repr(record.__dict__) for record in caplog.records]
    assert any(record.msg == "paystack.payout.initiate" for record in caplog.records)
    assert any(http.mask(NUBAN) in line for line in logged)
    assert not any(NUBAN in line for line in logged)
    assert not any(SECRET in line for line in logged)
