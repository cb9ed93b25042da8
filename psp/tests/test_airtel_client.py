"""AirtelAdapter against the Airtel fake (a real local HTTP server speaking protocol/airtel-money.md).

The behaviours the conformance suite checks, at the adapter's level: money leaves once (duplicate ids are
read back, never refused), only Airtel's own answer about our id is final, refusals before money moved are
PspRejected and only those, errors inside HTTP 200 are read from the body, callbacks are hints.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from psp.base import (
    AccountName,
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
from psp.clients.airtel import AirtelAdapter, AirtelConfig, CountryConfig, crypto
from psp.tests.conformance.fakes.airtel import (
    CALLBACK_SECRET,
    CLIENT_ID,
    CLIENT_SECRET,
    PIN,
    AirtelFake,
    callback_hash,
    envelope,
    public_key_b64,
    rsa_decrypt,
)
from psp.tests.conformance.kit import Refusal, Send, Status

ORDER_KEY = "559028af-6e15-4b21-bab5-052a248db249"
REF = "pn559028af6e154b21bab5052a248db2491"  # make_reference(order_key=ORDER_KEY, attempt=1)
REF_2 = "pn559028af6e154b21bab5052a248db2492"
CREATE = "/standard/v2/disbursements/"
KEYS = "/v1/rsa/encryption-keys"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake(httpserver):
    airtel = AirtelFake(httpserver)
    airtel.install()
    return airtel


def make_adapter(fake, *, clock=None, timeout=Decimal("10"), callback_secret=CALLBACK_SECRET, **country):
    settings = {
        "country": "UG",
        "base_url": fake.base_url,
        "pin": PIN,
        "pin_padding": fake.pin_padding,
        "signing": fake.signing,
        "version": fake.version,
        **country,
    }
    config = AirtelConfig(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        countries=(CountryConfig(**settings),),
        callback_secret=callback_secret,
        timeout=timeout,
        connect_timeout=Decimal("5"),
    )
    return AirtelAdapter(config, clock=clock or Clock())


def payout(*, reference=REF, amount="15000", phone="+256752604392", currency="UGX", institution="AIRTUGPC"):
    return PayoutRequest(
        reference=reference,
        amount=Decimal(amount),
        currency=currency,
        recipient=Recipient(institution=institution, account_identifier=phone, account_name="Bob Mukasa"),
    )


def calls(fake, path, method=None):
    return [
        request
        for request, _ in fake.server.log
        if request.path == path and (method is None or request.method == method)
    ]


def sent_bodies(fake):
    return [
        json.loads(request.get_data(), parse_float=Decimal)
        for request, _ in fake.server.log
        if fake.is_create(request.path, request.method)
    ]


def airtel_error(code, message="", *, transaction=None, success=False):
    return envelope(response_code=code, message=message or code, success=success, transaction=transaction)


# --- references and configuration ---------------------------------------------------------------------


def test_reference_is_the_order_and_attempt_in_letters_and_digits(fake):
    adapter = make_adapter(fake)

    references = [adapter.make_reference(order_key=ORDER_KEY, attempt=attempt) for attempt in (1, 2, 10, 11)]
    hashed = adapter.make_reference(order_key="ORDER-42", attempt=1)

    assert references[:2] == [REF, REF_2]
    assert len(set(references)) == 4
    assert hashed.startswith("pnh")
    assert hashed.isalnum()
    assert len(hashed) <= 40
    assert all(reference.isalnum() and 4 <= len(reference) <= 64 for reference in references)


@pytest.mark.parametrize(
    ("currency", "institution", "served"),
    [
        ("UGX", "AIRTUGPC", True),
        ("ugx", "airtugpc", True),
        ("UGX", "MOMOUGPC", False),
        ("KES", "AIRTKEPC", False),  # Kenya is not enabled in this adapter
        ("GHS", "AIRTGHPC", False),  # AirtelTigo is not an Airtel Africa market
    ],
)
def test_supports_the_enabled_countries_institution_in_its_currency(fake, currency, institution, served):
    assert make_adapter(fake).supports(currency=currency, institution=institution) is served


def test_configuration_refuses_two_countries_sharing_a_currency_and_unknown_markets():
    chad = CountryConfig(country="TD", base_url="https://openapi.airtel.africa", pin="1234")
    gabon = CountryConfig(country="GA", base_url="https://openapi.airtel.africa", pin="1234")

    with pytest.raises(ValueError, match="XAF"):
        AirtelConfig(client_id="id", client_secret="secret", countries=(chad, gabon))
    with pytest.raises(ValueError, match="GH"):
        CountryConfig(country="GH", base_url="https://openapi.airtel.africa", pin="1234")
    with pytest.raises(ValueError, match="signing"):
        CountryConfig(country="UG", base_url="https://openapi.airtel.africa", pin="1234", signing="on")


@pytest.mark.parametrize(
    "phone", ["+256752604392", "256752604392", "00256 752 604 392", "0752-604-392", "752604392"]
)
def test_msisdn_is_sent_national_without_country_code(phone):
    uganda = CountryConfig(country="UG", base_url="https://x", pin="1234")
    leading_zero = CountryConfig(country="UG", base_url="https://x", pin="1234", msisdn_leading_zero=True)

    assert uganda.msisdn(phone) == "752604392"
    assert leading_zero.msisdn(phone) == "0752604392"


@pytest.mark.parametrize("phone", ["+254752604392", "75260439", "07526043921", "075260439", "7526O4392", ""])
def test_msisdn_of_another_length_or_country_is_refused_before_sending(fake, phone):
    adapter = make_adapter(fake)

    with pytest.raises(PspRejected) as refused:
        adapter.initiate_payout(payout(phone=phone))

    assert refused.value.reason == FailureReason.RECIPIENT_INVALID
    assert fake.posts() == 0


# --- sending --------------------------------------------------------------------------------------------


def test_synchronous_success_with_headers_encrypted_pin_and_our_id(fake):
    fake.script_send(Send.SUCCEEDED)

    result = make_adapter(fake).initiate_payout(payout(amount="15000.0000"))

    assert (result.status, result.psp_transaction_id, result.reference) == (
        PayoutStatus.SUCCEEDED,
        fake.payouts[REF].psp_id,
        REF,
    )
    (request,) = calls(fake, CREATE, "POST")
    assert request.headers["X-Country"] == "UG"
    assert request.headers["X-Currency"] == "UGX"
    assert request.headers["Accept"] == "*/*"
    assert request.headers["Authorization"] == "Bearer airtel-token-1"
    body = json.loads(request.get_data(), parse_float=Decimal)
    assert body["payee"] == {"msisdn": "752604392", "currency": "UGX"}
    assert body["transaction"] == {"amount": 15000, "id": REF, "type": "B2C"}
    assert body["reference"] == REF
    assert rsa_decrypt(body["pin"], "pkcs1v15").decode() == PIN
    assert b'"amount":15000,' in request.get_data()  # a JSON number in major units
    assert fake.problems == []


def test_in_process_answer_is_pending(fake):
    fake.script_send(Send.PENDING)

    result = make_adapter(fake).initiate_payout(payout())

    assert result.status == PayoutStatus.PENDING
    assert fake.payouts[REF].status == Status.PENDING


def test_v1_and_v3_bodies_and_paths(httpserver):
    airtel = AirtelFake(httpserver, version="v1")  # takes every version's path; checks B2C only off v1
    airtel.install()

    make_adapter(airtel, version="v1").initiate_payout(payout())
    make_adapter(airtel, version="v3").initiate_payout(payout(reference=REF_2))

    first, second = sent_bodies(airtel)
    assert first["payee"] == {"msisdn": "752604392"}
    assert first["transaction"] == {"amount": 15000, "id": REF}
    assert second["payee"] == {"msisdn": "752604392", "currency": "UGX", "wallet_type": "NORMAL"}
    assert second["transaction"] == {"amount": 15000, "id": REF_2, "type": "B2C"}
    assert [request.path for request, _ in httpserver.log if request.path.startswith("/standard/")] == [
        "/standard/v1/disbursements/",
        "/standard/v3/disbursements",
    ]


def test_amount_with_more_decimals_than_the_country_takes_is_refused_not_rounded(fake):
    with pytest.raises(PspRejected) as refused:
        make_adapter(fake).initiate_payout(payout(amount="15000.50"))

    make_adapter(fake, amount_decimals=2).initiate_payout(payout(amount="15000.5000"))

    assert refused.value.reason == FailureReason.UNSUPPORTED
    (body,) = sent_bodies(fake)
    assert body["transaction"]["amount"] == Decimal("15000.50")


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        ("DP00900001012", "Mobile number entered is incorrect.", FailureReason.RECIPIENT_INVALID),
        ("DP00900001007", "Not enough funds in account", FailureReason.INSUFFICIENT_FUNDS),
        ("DP00900001003", "Maximum transaction limit reached for the day.", FailureReason.LIMIT_EXCEEDED),
        ("DP00900001004", "Amount entered is out of range", FailureReason.LIMIT_EXCEEDED),
        (
            "DP00900001013",
            "Invalid Msisdn Length. Msisdn Length should be 9",
            FailureReason.RECIPIENT_INVALID,
        ),
        ("DP00900001005", "Transaction failed.", FailureReason.OTHER),
        ("ROUTER112", "Invalid currency", FailureReason.UNSUPPORTED),
        ("ESB000033", "Invalid MSISDN length", FailureReason.RECIPIENT_INVALID),
    ],
)
def test_refusal_codes_inside_http_200_are_final_refusals(fake, code, message, reason):
    fake.answer_next_send(airtel_error(code, message))

    with pytest.raises(PspRejected) as refused:
        make_adapter(fake).initiate_payout(payout())

    assert type(refused.value) is PspRejected
    assert (refused.value.reason, refused.value.psp_code, refused.value.http_status) == (reason, code, 200)


@pytest.mark.parametrize(
    "refusal",
    [Refusal.RECIPIENT_INVALID, Refusal.INSUFFICIENT_FUNDS, Refusal.LIMIT],
)
def test_the_fakes_refusals_are_refusals(fake, refusal):
    fake.script_send(refusal)

    with pytest.raises(PspRejected) as refused:
        make_adapter(fake).initiate_payout(payout())

    assert refused.value.reason == refusal.value.replace("limit", "limit_exceeded")
    assert fake.payouts == {}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, airtel_error("DP00900001000", "Transaction is in ambiguous state")),
        (200, airtel_error("DP00900001014", "Transaction Timed Out")),
        (200, airtel_error("ROUTER117", "Request timeout")),
        (200, airtel_error("ESB000001", "Something went wrong")),
        (200, airtel_error("ESB000004", "Error initiating payment")),
        (200, airtel_error("DP00900009999", "a code nobody documented")),
        (400, airtel_error("DP00900009999", "a code nobody documented")),
        # contradictions: a success code without TS, a refusal code with TS, TA on the send
        (200, airtel_error("DP00900001001", transaction={"id": REF, "status": "TF"}, success=True)),
        (200, airtel_error("DP00900001005", transaction={"id": REF, "status": "TS"})),
        (200, airtel_error("DP00900001001", transaction={"id": REF, "status": "TA"}, success=True)),
        (
            200,
            airtel_error("DP00900001001", transaction={"id": "someone-else", "status": "TS"}, success=True),
        ),
        (200, {"status": {"code": "400", "success": False, "message": "no code at all"}}),
        (200, {}),
        (200, b""),
        (200, b"<html>gateway</html>"),
        (408, {"status": {"code": "408", "message": "read timeout", "success": False}}),
        (500, airtel_error("DP00900001005", "Transaction failed.")),
        (503, {"status": {"code": "503", "message": "maintenance", "success": False}}),
    ],
)
def test_ambiguous_unknown_and_contradictory_answers_are_unknown_outcomes_never_refusals(fake, status, body):
    fake.answer_next_send(body, status=status)

    with pytest.raises(PspUnavailable):
        make_adapter(fake).initiate_payout(payout())


def test_rate_limit_and_service_down_are_unknown_outcomes(fake):
    fake.script_send(Refusal.RATE_LIMITED)
    fake.script_send(Refusal.SERVICE_DOWN)
    adapter = make_adapter(fake)

    with pytest.raises(PspUnavailable) as limited:
        adapter.initiate_payout(payout())
    with pytest.raises(PspUnavailable) as down:
        adapter.initiate_payout(payout())

    assert (limited.value.http_status, limited.value.retry_after) == (429, 1.0)
    assert down.value.http_status == 503


def test_timeout_after_airtel_took_it_is_unknown_and_the_enquiry_finds_it(httpserver):
    slow = AirtelFake(httpserver, delay=5.0)
    slow.install()
    adapter = make_adapter(slow, timeout=Decimal("1.5"))
    adapter.get_balances()  # token fetched before the timed call
    slow.script_send(Send.TIMEOUT_AFTER_COMMIT)

    with pytest.raises(PspUnavailable) as unknown:
        adapter.initiate_payout(payout())
    found = make_adapter(slow).get_payout(reference=REF, currency="UGX")

    assert unknown.value.reason == FailureReason.TIMEOUT
    assert found.status == PayoutStatus.PENDING


# --- duplicates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["DP00900001011", "DP00900001017", "ESB000041"])
def test_duplicate_id_is_answered_by_the_enquiry_never_a_refusal(fake, form):
    adapter = make_adapter(fake)
    adapter.initiate_payout(payout())
    fake.finish(REF, Status.SUCCEEDED)
    fake.script_send(Send.SUCCEEDED, duplicate_form=form)

    result = adapter.initiate_payout(payout())

    assert (result.status, result.psp_transaction_id) == (PayoutStatus.SUCCEEDED, fake.payouts[REF].psp_id)
    assert fake.posts() == 2
    assert [body["transaction"]["id"] for body in sent_bodies(fake)] == [REF, REF]
    assert len(fake.held()) == 1


def test_duplicate_id_as_result_code_only_is_a_duplicate_too(fake):
    adapter = make_adapter(fake)
    adapter.initiate_payout(payout())
    fake.answer_next_send({"status": {"code": "400", "result_code": "ESB000041", "success": False}})

    assert adapter.initiate_payout(payout()).status == PayoutStatus.PENDING


def test_duplicate_id_the_enquiry_does_not_show_yet_is_a_duplicate_reference(fake):
    adapter = make_adapter(fake)
    adapter.initiate_payout(payout())
    fake.lag_reads(1)

    with pytest.raises(DuplicateReference):
        adapter.initiate_payout(payout())


def test_duplicate_id_whose_enquiry_is_refused_is_still_a_duplicate_never_a_plain_refusal(fake):
    adapter = make_adapter(fake)
    adapter.initiate_payout(payout())
    fake.answer_next_read({"error": "forbidden"}, status=403)

    with pytest.raises(DuplicateReference):
        adapter.initiate_payout(payout())


# --- enquiry --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transaction_status", "expected"),
    [
        ("TS", PayoutStatus.SUCCEEDED),
        ("TF", PayoutStatus.FAILED),
        ("TIP", PayoutStatus.PENDING),
        ("TA", PayoutStatus.PENDING),
        ("TE", PayoutStatus.UNKNOWN),  # documented for collections only: staff decide
        ("PAID", PayoutStatus.UNKNOWN),
    ],
)
def test_enquiry_maps_the_transaction_status(fake, transaction_status, expected):
    transaction = {"id": REF, "status": transaction_status, "airtel_money_id": "MP210603.1234.L06941"}
    fake.answer_next_read(airtel_error("DP00900001001", "SUCCESS", transaction=transaction, success=True))

    result = make_adapter(fake).get_payout(reference=REF, currency="UGX")

    assert result.status == expected
    if expected in (PayoutStatus.SUCCEEDED, PayoutStatus.FAILED, PayoutStatus.PENDING):
        assert result.psp_transaction_id == "MP210603.1234.L06941"


def test_enquiry_of_a_failed_payout_carries_airtels_reason(fake):
    transaction = {"id": REF, "status": "TF", "message": "Payee is barred", "airtel_money_id": "X1"}
    fake.answer_next_read(airtel_error("DP00900001001", "SUCCESS", transaction=transaction, success=True))

    result = make_adapter(fake).get_payout(reference=REF, currency="UGX")

    assert (result.status, result.failure_reason, result.failure_message) == (
        PayoutStatus.FAILED,
        FailureReason.RECIPIENT_INVALID,
        "Payee is barred",
    )


@pytest.mark.parametrize("code", ["DP00900001015", "ESB000045"])
def test_enquiry_not_found_codes_are_not_found(fake, code):
    fake.answer_next_read(airtel_error(code, "Transaction Not Found."))

    assert make_adapter(fake).get_payout(reference=REF, currency="UGX").status == PayoutStatus.NOT_FOUND


def test_enquiry_about_another_id_is_unknown(fake):
    transaction = {"id": REF_2, "status": "TS"}
    fake.answer_next_read(airtel_error("DP00900001001", "SUCCESS", transaction=transaction, success=True))

    assert make_adapter(fake).get_payout(reference=REF, currency="UGX").status == PayoutStatus.UNKNOWN


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, airtel_error("ESB000014", "Error fetching status"), PspUnavailable),
        (200, airtel_error("DP00900001014", "Transaction Timed Out"), PspUnavailable),
        (200, airtel_error("DP00900001001", "SUCCESS", success=True), PspUnavailable),  # no transaction
        (200, b"not json", PspUnavailable),
        (400, airtel_error("DP00900001013", "Invalid Country Code"), PspRejected),
        (404, {"message": "no route"}, PspRejected),
    ],
)
def test_enquiry_that_says_nothing_about_the_payout_is_an_error(fake, status, body, error):
    fake.answer_next_read(body, status=status)

    with pytest.raises(error):
        make_adapter(fake).get_payout(reference=REF, currency="UGX")


def test_enquiry_still_processing_without_a_transaction_is_pending(fake):
    fake.answer_next_read(airtel_error("DP00900001000", "still processing, ambiguous"))

    assert make_adapter(fake).get_payout(reference=REF, currency="UGX").status == PayoutStatus.PENDING


def test_v1_countries_enquire_on_v1_and_others_on_v2_with_transaction_type(httpserver):
    v1 = AirtelFake(httpserver, version="v1")
    v1.install()

    make_adapter(v1).get_payout(reference=REF, currency="UGX")
    make_adapter(v1, version="v3").get_payout(reference=REF, currency="UGX")

    reads = [
        (request.path, request.query_string.decode())
        for request, _ in httpserver.log
        if "/disbursements/" in request.path
    ]
    assert reads == [
        (f"/standard/v1/disbursements/{REF}", ""),
        (f"/standard/v2/disbursements/{REF}", "transactionType=B2C"),
    ]
    assert v1.problems == []


# --- token ------------------------------------------------------------------------------------------------


def test_token_is_reused_and_fetched_again_before_its_180_seconds_run_out(fake):
    clock = Clock()
    adapter = make_adapter(fake, clock=clock)

    adapter.get_balances()
    clock.now += 149
    adapter.get_balances()
    clock.now += 2  # 151 s: inside the 30 s margin
    adapter.get_balances()

    assert fake.tokens == ["airtel-token-1", "airtel-token-2"]
    assert [request.headers["Authorization"] for request in calls(fake, "/standard/v1/users/balance")] == [
        "Bearer airtel-token-1",
        "Bearer airtel-token-1",
        "Bearer airtel-token-2",
    ]


def test_invalid_token_gets_a_new_token_and_one_repeat_with_the_same_id(fake):
    adapter = make_adapter(fake)
    adapter.initiate_payout(payout(reference=REF_2))  # token and PIN key in hand
    fake.revoke_tokens()
    fake.script_send(Send.SUCCEEDED)

    result = adapter.initiate_payout(payout())

    assert result.status == PayoutStatus.SUCCEEDED
    posts = calls(fake, CREATE, "POST")[1:]
    assert [request.headers["Authorization"] for request in posts] == [
        "Bearer airtel-token-1",
        "Bearer airtel-token-2",
    ]
    assert [body["transaction"]["id"] for body in sent_bodies(fake)] == [REF_2, REF, REF]
    assert len(fake.held()) == 2


def test_refused_credentials_are_a_refusal_before_any_send(fake):
    adapter = AirtelAdapter(
        AirtelConfig(
            client_id=CLIENT_ID,
            client_secret="wrong",
            countries=(CountryConfig(country="UG", base_url=fake.base_url, pin=PIN),),
        )
    )

    with pytest.raises(PspRejected):
        adapter.initiate_payout(payout())

    assert fake.posts() == 0


# --- PIN and signing ------------------------------------------------------------------------------------


def test_pin_is_encrypted_once_with_the_fetched_key_and_reused(fake):
    adapter = make_adapter(fake)

    adapter.initiate_payout(payout())
    adapter.initiate_payout(payout(reference=REF_2))

    first, second = sent_bodies(fake)
    assert first["pin"] == second["pin"]
    assert len(calls(fake, KEYS)) == 1
    assert calls(fake, KEYS)[0].headers["X-Country"] == "UG"


@pytest.mark.parametrize("padding", ["pkcs1v15", "oaep-sha1", "oaep-sha256", "oaep-sha256-mgf1-sha1"])
def test_each_pin_padding_decrypts_at_airtel(httpserver, padding):
    airtel = AirtelFake(httpserver, pin_padding=padding)
    airtel.install()
    airtel.script_send(Send.SUCCEEDED)

    result = make_adapter(airtel).initiate_payout(payout())

    assert result.status == PayoutStatus.SUCCEEDED
    assert airtel.problems == []


def test_configured_key_is_used_without_asking_airtel(fake):
    make_adapter(fake, pin_public_key=public_key_b64()).initiate_payout(payout())

    assert calls(fake, KEYS) == []
    assert fake.problems == []


def test_unusable_configured_key_is_a_refusal_before_sending(fake):
    with pytest.raises(PspRejected):
        make_adapter(fake, pin_public_key="bm90IGEga2V5").initiate_payout(payout())

    assert fake.posts() == 0


def test_refused_pin_is_encrypted_again_next_time(fake):
    adapter = make_adapter(fake)
    fake.answer_next_send(airtel_error("ROUTER116", "The encrypted value of the pin is incorrect"))

    with pytest.raises(PspRejected):
        adapter.initiate_payout(payout())
    adapter.initiate_payout(payout(reference=REF_2))

    assert len(calls(fake, KEYS)) == 2


@pytest.mark.parametrize("padding", ["pkcs1v15", "oaep-sha256"])
def test_signed_body_is_the_exact_bytes_sent(httpserver, padding):
    airtel = AirtelFake(httpserver, signing=padding)
    airtel.install()

    result = make_adapter(airtel).initiate_payout(payout())

    assert result.status == PayoutStatus.PENDING
    assert airtel.problems == []
    (request,) = calls(airtel, CREATE, "POST")
    assert request.headers["x-signature"]
    assert request.headers["x-key"]


def test_unsigned_body_where_airtel_wants_signing_is_refused(httpserver):
    airtel = AirtelFake(httpserver, signing="pkcs1v15")
    airtel.install()

    with pytest.raises(PspRejected) as refused:
        make_adapter(airtel, signing="off").initiate_payout(payout())

    assert refused.value.psp_code == "DP00900001016"


def test_message_signature_matches_the_protocol_vector():
    body = (
        b'{"reference":"1234","subscriber":{"country":"UG","currency":"UGX","msisdn":"752604392"},'
        b'"transaction":{"amount":"100","country":"UG","currency":"UGX","id":"test_id "}}'
    )

    signature = crypto.aes_signature(
        body,
        key=base64.b64decode("PSw37xtnShLl7zgWn4dLSnf1J5GRhRsOD4OfvJOuLIM="),
        iv=base64.b64decode("gGIhDvCBnSBhBgYiXCyMnw=="),
    )

    assert signature == (
        "bDOsVGZzbK0P5jO/M5QVMH/qxSmRJLEvIPZCdW6H81xvsZNI6jZej54oBQlHZ38yy63QNeyyYcfEkGJ8f3f15wHWs86V9BCIpHS"
        "esS3SrhozE/gGA1fLydeSS26mw0jhyt9XIpabk1RjDH59SfsrkHKU38I5mRlthG/t2qXJck0FhNR64bgOExm9CsuxUlfpsSoW1g"
        "81g1u5a4yMFIHhp77f+h3EXNHzcEsdSWhqTho="
    )


# --- KYC and balance ------------------------------------------------------------------------------------


def test_kyc_gives_the_holders_name(fake):
    name = make_adapter(fake).resolve_account(
        recipient=Recipient(institution="AIRTUGPC", account_identifier="0752604392"), currency="UGX"
    )

    assert name == AccountName(account_identifier="752604392", account_name="BOB MUKASA")
    assert calls(fake, "/standard/v1/users/752604392")[0].headers["X-Country"] == "UG"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            200,
            {"data": {"first_name": "BOB", "last_name": "M", "is_barred": True}, "status": {"success": True}},
        ),
        (200, {"data": {"user_name": "Bob", "is_airtel_money_user": False}, "status": {"success": True}}),
        (404, {"status": {"code": "404", "message": "Not Found", "success": False}}),
        (200, {"status": {"response_code": "DP02200000000", "message": "User not found", "success": False}}),
    ],
)
def test_kyc_refuses_barred_unregistered_and_unknown_wallets(fake, status, body):
    fake.server.expect_oneshot_request("/standard/v1/users/752604392", method="GET").respond_with_json(
        body, status=status
    )  # one-shot handlers answer before the fake's own

    with pytest.raises(PspRejected) as refused:
        make_adapter(fake).resolve_account(
            recipient=Recipient(institution="AIRTUGPC", account_identifier="752604392"), currency="UGX"
        )

    assert refused.value.reason == FailureReason.RECIPIENT_INVALID


def test_kyc_of_the_other_lookup_shape_gives_its_user_name(fake):
    fake.server.expect_oneshot_request("/standard/v1/users/752604392", method="GET").respond_with_json(
        {"data": {"user_name": "Bob Mukasa", "is_airtel_money_user": True}, "status": {"success": True}}
    )

    name = make_adapter(fake).resolve_account(
        recipient=Recipient(institution="AIRTUGPC", account_identifier="752604392"), currency="UGX"
    )

    assert name.account_name == "Bob Mukasa"


def test_balance_of_the_disbursement_wallet_per_country(fake):
    fake.set_balance("UGX", Decimal("230486.65"))

    assert make_adapter(fake).get_balances() == [
        PspBalanceReading(currency="UGX", total=Decimal("230486.65"), available=Decimal("230486.65"))
    ]


def test_balance_v2_asks_for_the_disbursement_wallet_and_off_asks_nothing(fake):
    make_adapter(fake, balance="v2").get_balances()
    readings = make_adapter(fake, balance="off").get_balances()

    (request,) = calls(fake, "/standard/v2/users/balance")
    assert request.args["type"] == "DISB"
    assert readings == []
    assert calls(fake, "/standard/v1/users/balance") == []


# --- callbacks ------------------------------------------------------------------------------------------


def test_authenticated_callback_is_a_hint_about_our_id(fake):
    adapter = make_adapter(fake)
    fake.script_send(Send.SUCCEEDED)
    adapter.initiate_payout(payout())
    callback = fake.callback(REF)

    notice = adapter.parse_webhook(body=callback.body, headers=callback.headers)
    again = adapter.parse_webhook(body=callback.body, headers=callback.headers)

    assert (notice.reference, notice.status, notice.event_type) == (
        REF,
        PayoutStatus.SUCCEEDED,
        "disbursement.ts",
    )
    assert again.event_id == notice.event_id


def test_forged_or_unsigned_callback_is_refused_when_authentication_is_on(fake):
    adapter = make_adapter(fake)
    adapter.initiate_payout(payout())
    forged = fake.callback(REF, forged=True)
    unsigned = json.dumps({"transaction": json.loads(forged.body)["transaction"]}).encode()

    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=forged.body, headers={})
    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=unsigned, headers={})
    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=b"not json", headers={})


@pytest.mark.parametrize("hashed", ["raw_transaction", "compact_transaction", "body_without_hash", "header"])
def test_callback_hash_is_checked_against_every_candidate_text(fake, hashed):
    raw_transaction = (
        '{ "id": "%s", "message": "Paid UGX 5,000", "status_code": "TF", "airtel_money_id": "MP1" }'
    )
    transaction_text = raw_transaction % REF
    transaction = json.loads(transaction_text)
    messages = {
        "raw_transaction": transaction_text.encode(),
        "compact_transaction": json.dumps(transaction, separators=(",", ":")).encode(),
        "body_without_hash": json.dumps({"transaction": transaction}, separators=(",", ":")).encode(),
    }
    if hashed == "header":
        body = f'{{"transaction": {transaction_text}}}'.encode()
        headers = {"hash": callback_hash(body)}
    else:
        digest = callback_hash(messages[hashed])
        body = f'{{"transaction": {transaction_text}, "hash": "{digest}"}}'.encode()
        headers = {}

    notice = make_adapter(fake).parse_webhook(body=body, headers=headers)

    assert (notice.reference, notice.status) == (REF, PayoutStatus.FAILED)


def test_callback_without_authentication_configured_is_an_unverified_hint(fake):
    adapter = make_adapter(fake, callback_secret="")
    body = json.dumps({"transaction": {"id": REF, "status_code": "TS", "airtel_money_id": "MP1"}}).encode()

    notice = adapter.parse_webhook(body=body, headers={})

    assert (notice.reference, notice.status) == (REF, PayoutStatus.SUCCEEDED)
    with pytest.raises(PspRejected):
        adapter.parse_webhook(body=b'{"hello": "world"}', headers={})


def test_member_texts_keep_each_value_as_it_came():
    text = ' { "transaction" : {"id": "A", "n": 1.50} , "hash":"x==" , "list": [1, {"a": "}"}] } '

    assert crypto.member_texts(text) == {
        "transaction": '{"id": "A", "n": 1.50}',
        "hash": '"x=="',
        "list": '[1, {"a": "}"}]',
    }
    for broken in ("[]", '{"a" 1}', '{"a": 1', "{1: 2}"):
        with pytest.raises(ValueError, match=r"expected|object|string|Expecting"):
            crypto.member_texts(broken)
