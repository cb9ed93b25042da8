"""LencoAdapter against a real local HTTP server replaying the answers documented in protocol/lenco.md."""

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

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
    WebhookBodyRefused,
    WebhookSignatureInvalid,
)
from psp.clients import http
from psp.clients.lenco import LencoAdapter, LencoConfig, failure_reason_from_text, webhook_signature

FIXTURES = Path(__file__).parent / "fixtures" / "lenco"
API_KEY = "test-lenco-token-9f8e7d6c"
ACCOUNT_ID = "6f2c3a9e-1b7d-4c55-9e0a-3d8b2f41c7aa"
ZMW_ACCOUNT_ID = "a1b2c3d4-e5f6-4789-8abc-def012345678"
ORDER_KEY = "559028af-6e15-4b21-bab5-052a248db249"
V1_REF = "pn-559028af6e154b21bab5052a248db249-1"
V2_REF = "pn-7d3b1f0e2c4a4e8f9b6a1c2d3e4f5a6b-1"
NUBAN = "0123456789"
DOC_TOKEN = "xo+CAiijrIy9XvZCYyhjrv0fpSAL6CfU8CgA+up1NXqK"
DOC_SIGNATURE = (
    "ab5abce415879019a5e98482fc7e93663f1521683b410e13c42e987f6f6aeab1"
    "13fe9185c89ee75c4d94672ff85f0ae50c0ebd5f2b12de56ac8f9ddaf7dd6afe"
)
JSON = "application/json"


def fixture_bytes(name):
    return (FIXTURES / name).read_bytes()


def serve(handler, name, status=200):
    handler.respond_with_data(fixture_bytes(name), status=status, content_type=JSON)


def make_adapter(httpserver, *, account_id=ACCOUNT_ID, timeout=Decimal("5"), api_key=API_KEY):
    return LencoAdapter(
        LencoConfig(
            base_url_v1=httpserver.url_for("/access/v1"),
            base_url_v2=httpserver.url_for("/access/v2"),
            api_key=api_key,
            account_id=account_id,
            timeout=timeout,
            connect_timeout=Decimal("2"),
        )
    )


def ngn_request(amount="15000.00"):
    return PayoutRequest(
        reference=V1_REF,
        amount=Decimal(amount),
        currency="NGN",
        recipient=Recipient(institution="ABNGNGLA", account_identifier=NUBAN, psp_institution="000014"),
        narration="Payout 559028af",
    )


def zmw_request(*, psp_institution, account_identifier, amount="20.00", currency="ZMW"):
    return PayoutRequest(
        reference=V2_REF,
        amount=Decimal(amount),
        currency=currency,
        recipient=Recipient(
            institution="", account_identifier=account_identifier, psp_institution=psp_institution
        ),
        narration="Payout 7d3b1f0e",
    )


def requests_to(httpserver, method, path):
    return [req for req, _ in httpserver.log if req.method == method and req.path == path]


def wait_until_logged(httpserver, method, path, count=1):
    """pytest-httpserver logs a request after its handler returns: wait for a slow handler to finish."""
    deadline = time.monotonic() + 5
    while len(requests_to(httpserver, method, path)) < count:
        assert time.monotonic() < deadline, "the slow request never completed"
        time.sleep(0.01)


def sent_json(request):
    return json.loads(request.get_data(), parse_float=Decimal)


@pytest.fixture(autouse=True)
def _server_saw_only_expected_requests(httpserver):
    yield
    httpserver.check_assertions()
    httpserver.check_handler_errors()


# --- references -----------------------------------------------------------------------------------


def test_make_reference_is_pn_plus_order_uuid_hex_plus_attempt(httpserver):
    adapter = make_adapter(httpserver)

    reference = adapter.make_reference(order_key=ORDER_KEY, attempt=1)

    assert reference == V1_REF
    assert len(reference) == 37
    assert adapter.make_reference(order_key=ORDER_KEY, attempt=2) == "pn-559028af6e154b21bab5052a248db249-2"


def test_make_reference_hashes_order_keys_that_are_not_canonical_uuids(httpserver):
    adapter = make_adapter(httpserver)
    order_key = "order #42 / with spaces and a very long tail that does not fit"

    reference = adapter.make_reference(order_key=order_key, attempt=3)

    assert reference == "pn-h" + hashlib.sha256(order_key.encode()).hexdigest()[:26] + "-3"
    assert len(reference) == 32
    assert adapter.make_reference(order_key=order_key, attempt=3) == reference


def test_make_reference_of_an_uppercase_uuid_is_not_the_lowercase_orders(httpserver):
    adapter = make_adapter(httpserver)

    reference = adapter.make_reference(order_key=ORDER_KEY.upper(), attempt=1)

    assert reference != V1_REF
    assert reference == "pn-h" + hashlib.sha256(ORDER_KEY.upper().encode()).hexdigest()[:26] + "-1"


# --- initiate + get -------------------------------------------------------------------------------


def test_ngn_payout_posts_v1_queued_transfer_and_returns_pending(httpserver):
    serve(
        httpserver.expect_request(
            "/access/v1/transfer",
            method="POST",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={
                "accountId": ACCOUNT_ID,
                "amount": "15000.00",
                "narration": "Payout 559028af",
                "reference": V1_REF,
                "accountNumber": NUBAN,
                "bankCode": "000014",
            },
        ),
        "v1_transfer_queued.json",
    )
    adapter = make_adapter(httpserver)

    result = adapter.initiate_payout(ngn_request())

    assert result.reference == V1_REF
    assert result.status is PayoutStatus.PENDING
    assert result.amount == Decimal("15000.00")
    assert result.failure_reason is None
    assert result.psp_transaction_id == ""


def test_ngn_payout_pending_then_successful_via_get_payout(httpserver):
    serve(httpserver.expect_request("/access/v1/transfer", method="POST"), "v1_transfer_queued.json")
    serve(
        httpserver.expect_request(f"/access/v1/transfer/by-reference/{V1_REF}", method="GET"),
        "v1_transfer_successful.json",
    )
    adapter = make_adapter(httpserver)

    created = adapter.initiate_payout(ngn_request())
    found = adapter.get_payout(reference=V1_REF, currency="NGN")

    assert created.status is PayoutStatus.PENDING
    assert found.status is PayoutStatus.SUCCEEDED
    assert found.psp_transaction_id == "000014240502101500123456789012"
    assert found.amount == Decimal("15000.00")
    assert found.fee == Decimal("10.75")
    assert isinstance(found.fee, Decimal)
    assert found.completed_at == datetime(2024, 5, 2, 10, 15, 4, 447000, tzinfo=UTC)
    assert found.failure_reason is None
    assert len(requests_to(httpserver, "POST", "/access/v1/transfer")) == 1


def test_v1_answer_200_with_failed_transaction_is_failed_result_with_mapped_reason(httpserver):
    serve(httpserver.expect_request("/access/v1/transfer", method="POST"), "v1_transfer_failed.json")
    adapter = make_adapter(httpserver)

    result = adapter.initiate_payout(ngn_request())

    assert result.status is PayoutStatus.FAILED
    assert result.failure_reason is FailureReason.INSUFFICIENT_FUNDS
    assert result.failure_message == "Insufficient funds in your account"
    assert result.completed_at == datetime(2024, 5, 2, 10, 15, 1, 2000, tzinfo=UTC)
    assert result.fee == Decimal("0.00")


def test_zmw_bank_payout_posts_v2_bank_account_with_amount_as_exact_json_number(httpserver):
    serve(
        httpserver.expect_request("/access/v2/transfers/bank-account", method="POST"),
        "v2_transfer_pending_bank.json",
    )
    adapter = make_adapter(httpserver, account_id=ZMW_ACCOUNT_ID)

    result = adapter.initiate_payout(
        zmw_request(
            psp_institution="bank:b7e1c5a2-9f3d-4e6b-8a1c-2d4f6e8a0b1c",
            account_identifier="1100 2233 44",
            amount="2500.50",
        )
    )

    (sent,) = requests_to(httpserver, "POST", "/access/v2/transfers/bank-account")
    assert b'"amount":2500.50' in sent.get_data()
    assert sent_json(sent) == {
        "accountId": ZMW_ACCOUNT_ID,
        "amount": Decimal("2500.50"),
        "reference": V2_REF,
        "narration": "Payout 7d3b1f0e",
        "accountNumber": "1100223344",
        "bankId": "b7e1c5a2-9f3d-4e6b-8a1c-2d4f6e8a0b1c",
        "country": "zm",
    }
    assert result.status is PayoutStatus.PENDING
    assert result.amount == Decimal("2500.50")
    assert result.fee == Decimal("8.50")
    assert result.psp_transaction_id == "240730006"


def test_zmw_mobile_money_payout_posts_v2_mobile_money_with_local_phone(httpserver):
    serve(
        httpserver.expect_request(
            "/access/v2/transfers/mobile-money",
            method="POST",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ),
        "v2_transfer_successful_mobile_money.json",
    )
    adapter = make_adapter(httpserver, account_id=ZMW_ACCOUNT_ID)

    result = adapter.initiate_payout(
        zmw_request(psp_institution="momo:airtel", account_identifier="+260 971 111111")
    )

    (sent,) = requests_to(httpserver, "POST", "/access/v2/transfers/mobile-money")
    assert sent_json(sent) == {
        "accountId": ZMW_ACCOUNT_ID,
        "amount": Decimal("20.00"),
        "reference": V2_REF,
        "narration": "Payout 7d3b1f0e",
        "phone": "0971111111",
        "operator": "airtel",
        "country": "zm",
    }
    assert result.status is PayoutStatus.SUCCEEDED
    assert result.psp_transaction_id == "240730007"
    assert result.completed_at == datetime(2024, 7, 30, 9, 0, 7, 212000, tzinfo=UTC)


def test_mwk_bare_operator_name_is_mobile_money_in_malawi(httpserver):
    serve(
        httpserver.expect_request("/access/v2/transfers/mobile-money", method="POST"),
        "v2_transfer_successful_mobile_money.json",
    )
    adapter = make_adapter(httpserver, account_id=ZMW_ACCOUNT_ID)

    adapter.initiate_payout(
        zmw_request(psp_institution="TNM", account_identifier="265881111111", currency="MWK")
    )

    (sent,) = requests_to(httpserver, "POST", "/access/v2/transfers/mobile-money")
    body = sent_json(sent)
    assert (body["phone"], body["operator"], body["country"]) == ("0881111111", "tnm", "mw")


def test_operator_not_served_in_the_currency_is_rejected_before_any_request(httpserver):
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.initiate_payout(zmw_request(psp_institution="momo:tnm", account_identifier="0971111111"))

    assert excinfo.value.reason is FailureReason.UNSUPPORTED
    assert httpserver.log == []


def test_amount_with_more_than_two_decimals_is_refused_before_any_request(httpserver):
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.initiate_payout(ngn_request(amount="100.005"))

    assert excinfo.value.reason is FailureReason.UNSUPPORTED
    assert httpserver.log == []


def test_v2_failed_transfer_maps_not_enough_funds(httpserver):
    serve(
        httpserver.expect_request(f"/access/v2/transfers/status/{V2_REF}"),
        "v2_transfer_failed_mobile_money.json",
    )
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=V2_REF, currency="ZMW")

    assert result.status is PayoutStatus.FAILED
    assert result.failure_reason is FailureReason.INSUFFICIENT_FUNDS
    assert result.failure_message == "Not enough funds"


def test_unknown_status_maps_to_unknown_without_crashing(httpserver):
    serve(
        httpserver.expect_request(f"/access/v2/transfers/status/{V2_REF}"), "v2_transfer_unknown_status.json"
    )
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=V2_REF, currency="ZMW")

    assert result.status is PayoutStatus.UNKNOWN
    assert result.reference == V2_REF
    assert result.raw["status"] == "reversed"


def test_answer_for_another_reference_maps_to_unknown(httpserver):
    serve(
        httpserver.expect_request("/access/v2/transfers/status/pn-other-1"),
        "v2_transfer_successful_mobile_money.json",
    )
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference="pn-other-1", currency="ZMW")

    assert result.status is PayoutStatus.UNKNOWN


def test_get_payout_v1_400_transaction_not_found_is_not_found(httpserver):
    serve(
        httpserver.expect_request(f"/access/v1/transfer/by-reference/{V1_REF}"),
        "v1_not_found.json",
        status=400,
    )
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=V1_REF, currency="NGN")

    assert result.status is PayoutStatus.NOT_FOUND
    assert result.reference == V1_REF


def test_get_payout_v2_404_is_not_found(httpserver):
    serve(httpserver.expect_request(f"/access/v2/transfers/status/{V2_REF}"), "v2_not_found.json", status=404)
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=V2_REF, currency="ZMW")

    assert result.status is PayoutStatus.NOT_FOUND


# --- duplicates -----------------------------------------------------------------------------------


def test_v1_duplicate_reference_is_resolved_by_looking_it_up(httpserver):
    serve(
        httpserver.expect_request("/access/v1/transfer", method="POST"),
        "v1_duplicate_reference.json",
        status=400,
    )
    serve(
        httpserver.expect_request(f"/access/v1/transfer/by-reference/{V1_REF}"), "v1_transfer_successful.json"
    )
    adapter = make_adapter(httpserver)

    result = adapter.initiate_payout(ngn_request())

    assert result.status is PayoutStatus.SUCCEEDED
    assert result.psp_transaction_id == "000014240502101500123456789012"
    assert len(requests_to(httpserver, "POST", "/access/v1/transfer")) == 1
    assert len(requests_to(httpserver, "GET", f"/access/v1/transfer/by-reference/{V1_REF}")) == 1


def test_v2_duplicate_reference_message_without_error_code_is_resolved_by_looking_it_up(httpserver):
    serve(
        httpserver.expect_request("/access/v2/transfers/mobile-money"),
        "v2_duplicate_reference.json",
        status=400,
    )
    serve(
        httpserver.expect_request(f"/access/v2/transfers/status/{V2_REF}"),
        "v2_transfer_failed_mobile_money.json",
    )
    adapter = make_adapter(httpserver, account_id=ZMW_ACCOUNT_ID)

    result = adapter.initiate_payout(
        zmw_request(psp_institution="momo:airtel", account_identifier="0975555555")
    )

    assert result.status is PayoutStatus.FAILED
    assert result.failure_reason is FailureReason.INSUFFICIENT_FUNDS
    assert len(requests_to(httpserver, "POST", "/access/v2/transfers/mobile-money")) == 1


def test_duplicate_reference_not_yet_visible_raises_duplicate_reference(httpserver):
    serve(
        httpserver.expect_request("/access/v1/transfer", method="POST"),
        "v1_duplicate_reference.json",
        status=400,
    )
    serve(
        httpserver.expect_request(f"/access/v1/transfer/by-reference/{V1_REF}"),
        "v1_not_found.json",
        status=400,
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(DuplicateReference) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.psp_code == "04"
    assert excinfo.value.http_status == 400
    assert excinfo.value.retryable is False


# --- error classes --------------------------------------------------------------------------------


def test_invalid_account_400_raises_rejected_recipient_invalid(httpserver):
    serve(
        httpserver.expect_request("/access/v1/transfer", method="POST"), "v1_invalid_account.json", status=400
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert type(excinfo.value) is PspRejected
    assert excinfo.value.reason is FailureReason.RECIPIENT_INVALID
    assert excinfo.value.psp_code == "05"
    assert excinfo.value.http_status == 400
    assert excinfo.value.psp == "lenco"


def test_429_with_retry_after_raises_unavailable_with_retry_after(httpserver):
    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_data(
        "", status=429, headers={"Retry-After": "7"}
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.retry_after == 7.0
    assert excinfo.value.http_status == 429
    assert excinfo.value.retryable is True


def test_500_raises_unavailable(httpserver):
    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_json(
        {"status": False, "message": "Internal server error", "data": None}, status=500
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.http_status == 500
    assert excinfo.value.reason is FailureReason.OTHER


def test_non_json_502_html_page_raises_unavailable(httpserver):
    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_data(
        fixture_bytes("gateway_502.html"), status=502, content_type="text/html"
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.http_status == 502
    assert "not JSON" in excinfo.value.message


def test_non_json_200_raises_unavailable(httpserver):
    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_data("OK", status=200)
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.http_status == 200


@pytest.mark.parametrize(
    "answer",
    [b"[" * 30000 + b"]" * 30000, b'{"status":true,"data":{"status":"\\ud800"}}', b'{"a":"\xff"}'],
    ids=["nested_30000", "lone_surrogate", "not_utf8"],
)
def test_answer_the_node_refuses_to_read_raises_unavailable_not_a_crash(httpserver, answer):
    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_data(
        answer, status=200, content_type="application/json"
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.http_status == 200
    assert "not JSON" in excinfo.value.message


def test_general_error_code_10_raises_unavailable(httpserver):
    serve(
        httpserver.expect_request("/access/v1/transfer", method="POST"), "v1_general_error.json", status=400
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.psp_code == "10"


def test_200_with_status_false_raises_unavailable(httpserver):
    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_json(
        {"status": False, "message": "Something went wrong", "data": None}
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable):
        adapter.initiate_payout(ngn_request())


def test_401_raises_rejected(httpserver):
    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_json(
        {"status": False, "message": "Unauthorized", "data": [], "errorCode": "09"}, status=401
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.http_status == 401
    assert excinfo.value.reason is FailureReason.OTHER


def test_read_timeout_raises_unavailable_with_timeout_reason(httpserver):

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response(fixture_bytes("v1_transfer_queued.json"), content_type=JSON)

    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_handler(slow)
    adapter = make_adapter(httpserver, timeout=Decimal("0.2"))

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.reason is FailureReason.TIMEOUT
    assert excinfo.value.http_status is None
    wait_until_logged(httpserver, "POST", "/access/v1/transfer")


def test_connection_refused_raises_unavailable():
    adapter = LencoAdapter(
        LencoConfig(
            base_url_v1="http://127.0.0.1:9/access/v1",
            base_url_v2="http://127.0.0.1:9/access/v2",
            api_key=API_KEY,
            account_id=ACCOUNT_ID,
            timeout=Decimal("1"),
            connect_timeout=Decimal("1"),
        )
    )

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.get_payout(reference=V1_REF, currency="NGN")

    assert excinfo.value.http_status is None


def test_timeout_after_lenco_committed_transfer_is_found_by_reference_without_second_post(httpserver):
    committed: dict[str, dict] = {}

    def create(request: Request) -> Response:
        body = json.loads(request.get_data())
        committed[body["reference"]] = body  # Lenco has the transfer ...
        time.sleep(0.6)  # ... but answers after the client gave up
        return Response(fixture_bytes("v1_transfer_queued.json"), content_type=JSON)

    def by_reference(request: Request) -> Response:
        reference = request.path.rsplit("/", 1)[1]
        if reference not in committed:
            return Response(fixture_bytes("v1_not_found.json"), status=400, content_type=JSON)
        return Response(fixture_bytes("v1_transfer_successful.json"), content_type=JSON)

    httpserver.expect_request("/access/v1/transfer", method="POST").respond_with_handler(create)
    httpserver.expect_request(f"/access/v1/transfer/by-reference/{V1_REF}").respond_with_handler(by_reference)
    adapter = make_adapter(httpserver, timeout=Decimal("0.2"))

    with pytest.raises(PspUnavailable):
        adapter.initiate_payout(ngn_request())
    wait_until_logged(httpserver, "POST", "/access/v1/transfer")
    found = adapter.get_payout(reference=V1_REF, currency="NGN")

    assert found.status is PayoutStatus.SUCCEEDED
    assert found.reference == V1_REF
    assert list(committed) == [V1_REF]
    assert len(requests_to(httpserver, "POST", "/access/v1/transfer")) == 1


# --- resolve --------------------------------------------------------------------------------------


def test_resolve_account_v1_returns_account_name(httpserver):
    serve(
        httpserver.expect_request(
            "/access/v1/resolve", method="GET", query_string={"accountNumber": NUBAN, "bankCode": "000014"}
        ),
        "v1_resolve.json",
    )
    adapter = make_adapter(httpserver)

    name = adapter.resolve_account(recipient=ngn_request().recipient, currency="NGN")

    assert name == AccountName(account_identifier=NUBAN, account_name="ADAEZE OKAFOR")


def test_resolve_account_v1_not_verified_raises_rejected_recipient_invalid(httpserver):
    serve(httpserver.expect_request("/access/v1/resolve", method="GET"), "v1_resolve_failed.json", status=400)
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.resolve_account(recipient=ngn_request().recipient, currency="NGN")

    assert excinfo.value.reason is FailureReason.RECIPIENT_INVALID
    assert excinfo.value.message == "Account Details could not be verified"


def test_resolve_zambian_mobile_money_posts_v2_resolve(httpserver):
    serve(
        httpserver.expect_request(
            "/access/v2/resolve/mobile-money",
            method="POST",
            json={"phone": "0971111111", "operator": "airtel", "country": "zm"},
        ),
        "v2_resolve_mobile_money.json",
    )
    adapter = make_adapter(httpserver)
    recipient = Recipient(institution="", account_identifier="260971111111", psp_institution="momo:airtel")

    name = adapter.resolve_account(recipient=recipient, currency="ZMW")

    assert name == AccountName(account_identifier="0971111111", account_name="MWILA BANDA")


def test_resolve_v2_bank_account_not_found_raises_rejected_recipient_invalid(httpserver):
    serve(
        httpserver.expect_request("/access/v2/resolve/bank-account", method="POST"),
        "v2_resolve_failed.json",
        400,
    )
    adapter = make_adapter(httpserver)
    recipient = Recipient(institution="", account_identifier="1100223344", psp_institution="bank-id-1")

    with pytest.raises(PspRejected) as excinfo:
        adapter.resolve_account(recipient=recipient, currency="ZMW")

    assert excinfo.value.reason is FailureReason.RECIPIENT_INVALID


def test_resolve_malawian_mobile_money_is_unsupported_without_a_request(httpserver):
    adapter = make_adapter(httpserver)
    recipient = Recipient(institution="TNMPMWPC", account_identifier="0881111111", psp_institution="momo:tnm")

    with pytest.raises(PspRejected) as excinfo:
        adapter.resolve_account(recipient=recipient, currency="MWK")

    assert excinfo.value.reason is FailureReason.UNSUPPORTED
    assert httpserver.log == []


# --- accounts and balances ------------------------------------------------------------------------


def test_get_balances_reads_v1_and_v2_accounts_as_decimal(httpserver):
    serve(httpserver.expect_request("/access/v1/accounts", method="GET"), "v1_accounts.json")
    serve(httpserver.expect_request("/access/v2/accounts", method="GET"), "v2_accounts.json")
    adapter = make_adapter(httpserver, account_id="")

    balances = adapter.get_balances()

    assert balances == [
        PspBalanceReading(currency="NGN", total=Decimal("2600000.75"), available=Decimal("2500000.50")),
        PspBalanceReading(currency="ZMW", total=Decimal("45300.00"), available=Decimal("45210.35")),
        PspBalanceReading(currency="MWK", total=Decimal("1250000.00"), available=Decimal("1250000.00")),
    ]
    assert all(isinstance(b.total, Decimal) and isinstance(b.available, Decimal) for b in balances)


def test_get_balances_with_a_configured_account_reports_it_only_under_its_own_currency(httpserver):
    serve(httpserver.expect_request("/access/v1/accounts", method="GET"), "v1_accounts.json")
    serve(httpserver.expect_request("/access/v2/accounts", method="GET"), "v2_accounts.json")
    adapter = make_adapter(httpserver, account_id=ZMW_ACCOUNT_ID)

    balances = adapter.get_balances()

    assert balances == [
        PspBalanceReading(currency="ZMW", total=Decimal("45300.00"), available=Decimal("45210.35")),
    ]


def test_payout_without_account_id_debits_the_active_account_of_the_currency_and_caches_it(httpserver):
    serve(httpserver.expect_request("/access/v1/accounts", method="GET"), "v1_accounts.json")
    serve(httpserver.expect_request("/access/v1/transfer", method="POST"), "v1_transfer_queued.json")
    adapter = make_adapter(httpserver, account_id="")

    adapter.initiate_payout(ngn_request())
    adapter.initiate_payout(ngn_request())

    posts = requests_to(httpserver, "POST", "/access/v1/transfer")
    assert [sent_json(p)["accountId"] for p in posts] == [ACCOUNT_ID, ACCOUNT_ID]
    assert len(requests_to(httpserver, "GET", "/access/v1/accounts")) == 1


def test_two_active_accounts_in_the_currency_is_refused_without_a_transfer(httpserver):
    accounts = json.loads(fixture_bytes("v1_accounts.json"))
    accounts["data"][1]["status"] = "active"
    httpserver.expect_request("/access/v1/accounts", method="GET").respond_with_json(accounts)
    adapter = make_adapter(httpserver, account_id="")

    with pytest.raises(PspRejected) as excinfo:
        adapter.initiate_payout(ngn_request())

    assert excinfo.value.reason is FailureReason.UNSUPPORTED
    assert requests_to(httpserver, "POST", "/access/v1/transfer") == []


# --- failure reason texts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Insufficient funds in your account", FailureReason.INSUFFICIENT_FUNDS),
        ("Insufficient Balance in Debit Account", FailureReason.INSUFFICIENT_FUNDS),
        ("Not enough funds", FailureReason.INSUFFICIENT_FUNDS),
        ("Withdrawal amount limit exceeded", FailureReason.LIMIT_EXCEEDED),
        ("Timeout waiting for response from destination bank", FailureReason.TIMEOUT),
        ("Transaction Timed Out", FailureReason.TIMEOUT),
        ("Beneficiary Bank not Available", FailureReason.DESTINATION_UNAVAILABLE),
        ("System Malfunction", FailureReason.DESTINATION_UNAVAILABLE),
        ("Account Details could not be verified", FailureReason.RECIPIENT_INVALID),
        ("Transfer Not Successful", FailureReason.OTHER),
        ("Transaction unauthorized", FailureReason.OTHER),
        ("Incorrect Pin", FailureReason.OTHER),
        ("Invalid Amount", FailureReason.OTHER),
        ("Payment invalid", FailureReason.OTHER),
        ("Failed", FailureReason.OTHER),
        ("", FailureReason.OTHER),
    ],
)
def test_failure_reason_text_maps_by_case_insensitive_substring(text, reason):
    assert failure_reason_from_text(text) is reason


# --- webhooks -------------------------------------------------------------------------------------


def test_webhook_signature_matches_the_documented_vector():
    body = fixture_bytes("webhook_doc_vector.json")

    assert hashlib.sha256(DOC_TOKEN.encode()).hexdigest() == (
        "d293d99ef7085d46d259dd014e5f68917149ecec8f9651ab9b28169e0485f7d8"
    )
    assert webhook_signature(body=body, api_key=DOC_TOKEN) == DOC_SIGNATURE


def test_webhook_with_the_documented_vector_parses_to_a_notice(httpserver):
    adapter = make_adapter(httpserver, api_key=DOC_TOKEN)
    body = fixture_bytes("webhook_doc_vector.json")

    notice = adapter.parse_webhook(body=body, headers={"x-lenco-signature": DOC_SIGNATURE})

    assert notice.event_type == "transfer.successful"
    assert notice.reference == "ref-3"
    assert notice.status is PayoutStatus.SUCCEEDED
    assert (
        notice.event_id
        == hashlib.sha256(b"transfer.successful|9525b4c6-502b-45be-90e1-81eb81a3f424|successful").hexdigest()
    )
    assert notice.payload["data"]["id"] == "9525b4c6-502b-45be-90e1-81eb81a3f424"


def test_webhook_signature_header_in_upper_case_hex_is_accepted(httpserver):
    adapter = make_adapter(httpserver, api_key=DOC_TOKEN)

    notice = adapter.parse_webhook(
        body=fixture_bytes("webhook_doc_vector.json"), headers={"X-Lenco-Signature": DOC_SIGNATURE.upper()}
    )

    assert notice.reference == "ref-3"


def test_webhook_with_tampered_body_is_refused(httpserver):
    adapter = make_adapter(httpserver, api_key=DOC_TOKEN)
    body = fixture_bytes("webhook_doc_vector.json").replace(b'"successful"}', b'"failed"}')

    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=body, headers={"X-Lenco-Signature": DOC_SIGNATURE})


def test_webhook_signed_with_another_key_is_refused(httpserver):
    adapter = make_adapter(httpserver, api_key=API_KEY)
    body = fixture_bytes("webhook_doc_vector.json")

    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=body, headers={"X-Lenco-Signature": DOC_SIGNATURE})


def test_webhook_keyed_with_the_raw_token_is_refused(httpserver):
    adapter = make_adapter(httpserver, api_key=DOC_TOKEN)
    body = fixture_bytes("webhook_doc_vector.json")
    raw_key_signature = hmac.new(
        DOC_TOKEN.encode(), body, hashlib.sha512
    ).hexdigest()  # lenco-python's mistake

    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=body, headers={"X-Lenco-Signature": raw_key_signature})


def test_webhook_without_signature_header_is_refused(httpserver):
    adapter = make_adapter(httpserver, api_key=DOC_TOKEN)

    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=fixture_bytes("webhook_doc_vector.json"), headers={"Content-Type": JSON})


def test_v1_transaction_failed_webhook_gives_client_reference_and_failed_hint(httpserver):
    adapter = make_adapter(httpserver)
    body = fixture_bytes("webhook_v1_transaction_failed.json")

    notice = adapter.parse_webhook(
        body=body, headers={"X-Lenco-Signature": webhook_signature(body=body, api_key=API_KEY)}
    )

    assert notice.event_type == "transaction.failed"
    assert notice.reference == V1_REF
    assert notice.status is PayoutStatus.FAILED


def test_webhook_for_a_collection_carries_no_payout_status(httpserver):
    adapter = make_adapter(httpserver)
    body = fixture_bytes("webhook_v2_collection_successful.json")

    notice = adapter.parse_webhook(
        body=body, headers={"X-Lenco-Signature": webhook_signature(body=body, api_key=API_KEY)}
    )

    assert notice.event_type == "collection.successful"
    assert notice.status is None


def test_signed_webhook_that_is_not_json_is_rejected_not_crashing(httpserver):
    adapter = make_adapter(httpserver)
    body = b"not json"

    with pytest.raises(PspRejected) as excinfo:
        adapter.parse_webhook(
            body=body, headers={"X-Lenco-Signature": webhook_signature(body=body, api_key=API_KEY)}
        )

    assert type(excinfo.value) is PspRejected


def test_signed_webhook_nested_too_deep_is_refused_as_a_body_not_a_crash(httpserver):
    adapter = make_adapter(httpserver)
    body = b'{"event":"transfer.successful","data":' + b"[" * 30000 + b"]" * 30000 + b"}"

    with pytest.raises(WebhookBodyRefused) as excinfo:
        adapter.parse_webhook(
            body=body, headers={"X-Lenco-Signature": webhook_signature(body=body, api_key=API_KEY)}
        )

    assert "nested deeper than 32" in excinfo.value.message


# --- logging --------------------------------------------------------------------------------------


def test_logs_mask_account_numbers_and_never_contain_the_api_key(httpserver, caplog):
    serve(
        httpserver.expect_request("/access/v1/transfer", method="POST"), "v1_invalid_account.json", status=400
    )
    adapter = make_adapter(httpserver)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(PspRejected):
        adapter.initiate_payout(ngn_request())

    logged = [repr(record.__dict__) for record in caplog.records]
    assert any("lenco.payout.initiate" == record.msg for record in caplog.records)
    assert any(http.mask(NUBAN) in line for line in logged)
    assert http.mask(NUBAN) == "****6789"
    assert not any(NUBAN in line for line in logged)
    assert not any(API_KEY in line for line in logged)


def test_list_banks_v1_returns_typed_rows_and_skips_unusable_ones(httpserver):
    body = {
        "status": True,
        "message": "",
        "data": [
            {"code": "000014", "name": "ACCESS BANK"},
            {"code": 90267, "name": " KUDA MFB "},
            {"code": "", "name": "NO CODE"},
            {"name": "NO CODE EITHER"},
            "not an object",
        ],
    }
    httpserver.expect_request("/access/v1/banks", method="GET").respond_with_json(body)

    banks = make_adapter(httpserver).list_banks(currency="NGN")

    assert banks == [
        Bank(code="000014", name="ACCESS BANK", country="ng"),
        Bank(code="90267", name="KUDA MFB", country="ng"),
    ]
    assert httpserver.log[0][0].headers["Authorization"] == f"Bearer {API_KEY}"


def test_list_banks_v2_asks_by_country_and_uses_the_bank_id(httpserver):
    body = {"status": True, "message": "", "data": [{"id": "b-1", "name": "Zanaco", "country": "zm"}]}
    httpserver.expect_request("/access/v2/banks", query_string="country=zm").respond_with_json(body)

    banks = make_adapter(httpserver, account_id="").list_banks(currency="ZMW")

    assert banks == [Bank(code="b-1", name="Zanaco", country="zm")]


def test_list_banks_for_a_currency_lenco_does_not_serve_is_unsupported(httpserver):
    with pytest.raises(PspRejected) as refused:
        make_adapter(httpserver).list_banks(currency="KES")

    assert refused.value.reason == FailureReason.UNSUPPORTED
    assert httpserver.log == []


def test_list_banks_answer_without_a_list_is_unavailable(httpserver):
    httpserver.expect_request("/access/v1/banks").respond_with_json(
        {"status": True, "message": "", "data": {}}
    )

    with pytest.raises(PspUnavailable):
        make_adapter(httpserver).list_banks(currency="NGN")
