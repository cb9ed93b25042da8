"""MtnMomoAdapter against a real local HTTP server replaying the answers of protocol/mtn-momo.md."""

import base64
import hashlib
import json
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug import Request, Response

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
    WebhookBodyRefused,
    WebhookSignatureInvalid,
)
from psp.clients.mtn_momo import MtnMomoAdapter, MtnMomoConfig

FIXTURES = Path(__file__).parent / "fixtures" / "mtn_momo"
SUBSCRIPTION_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
API_USER = "3f8b2c1a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
API_KEY = "b1c2d3e4f5a67890b1c2d3e4f5a67890"
ORDER_KEY = "559028af-6e15-4b21-bab5-052a248db249"
REF = "c29dd208-1b11-40ce-abd0-12c5470becab"  # make_reference(order_key=ORDER_KEY, attempt=1)
TRANSFER = "/disbursement/v1_0/transfer"
TOKEN_PATH = "/disbursement/token/"
ACCESS_TOKEN = json.loads((FIXTURES / "token.json").read_bytes())["access_token"]
JSON = "application/json"


def fixture_bytes(name):
    return (FIXTURES / name).read_bytes()


def serve(handler, name, status=200):
    handler.respond_with_data(fixture_bytes(name), status=status, content_type=JSON)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_adapter(httpserver, *, timeout=Decimal("5"), clock=None, **overrides):
    config = {
        "base_url": httpserver.url_for("/"),
        "subscription_key": SUBSCRIPTION_KEY,
        "api_user": API_USER,
        "api_key": API_KEY,
        "target_environment": "sandbox",
        "timeout": timeout,
        "connect_timeout": Decimal("2"),
        **overrides,
    }
    return MtnMomoAdapter(MtnMomoConfig(**config), clock=clock or Clock())


def serve_token(httpserver):
    serve(httpserver.expect_request(TOKEN_PATH, method="POST"), "token.json")


def payout_request(
    *, amount="50.00", currency="ZMW", phone="+260 97 1234567", narration="Payout order 559028af"
):
    return PayoutRequest(
        reference=REF,
        amount=Decimal(amount),
        currency=currency,
        recipient=Recipient(institution="MOMOZMPC", account_identifier=phone),
        narration=narration,
    )


def requests_to(httpserver, method, path):
    return [req for req, _ in httpserver.log if req.method == method and req.path == path]


def wait_until_logged(httpserver, method, path, count=1):
    """pytest-httpserver logs a request after its handler returns: wait for a slow handler to finish."""
    deadline = time.monotonic() + 5
    while len(requests_to(httpserver, method, path)) < count:
        assert time.monotonic() < deadline, "the slow request never completed"
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def _server_saw_only_expected_requests(httpserver):
    yield
    httpserver.check_assertions()
    httpserver.check_handler_errors()


# --- references -----------------------------------------------------------------------------------


def test_make_reference_is_a_deterministic_v4_shaped_uuid_per_attempt(httpserver):
    adapter = make_adapter(httpserver)

    first = adapter.make_reference(order_key=ORDER_KEY, attempt=1)

    assert first == REF
    assert uuid.UUID(first).version == 4
    assert uuid.UUID(first).variant == uuid.RFC_4122
    assert adapter.make_reference(order_key=ORDER_KEY, attempt=1) == first
    assert adapter.make_reference(order_key=ORDER_KEY, attempt=2) == "9815c859-d3b9-4507-b704-f4a99abe9350"


# --- initiate + get -------------------------------------------------------------------------------


def test_payout_posts_transfer_with_idempotency_headers_and_returns_pending_on_202(httpserver):
    serve_token(httpserver)
    httpserver.expect_request(
        TRANSFER,
        method="POST",
        headers={
            "X-Reference-Id": REF,
            "X-Target-Environment": "sandbox",
            "Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY,
            "Authorization": f"Bearer {ACCESS_TOKEN}",
            "X-Callback-Url": f"https://node.example.com/webhooks/mtn_momo/{REF}",
            "Content-Type": JSON,
        },
        json={
            "amount": "50",
            "currency": "ZMW",
            "externalId": REF,
            "payee": {"partyIdType": "MSISDN", "partyId": "260971234567"},
            "payerMessage": "Payout order 559028af",
            "payeeNote": "Payout order 559028af",
        },
    ).respond_with_data("", status=202)
    adapter = make_adapter(httpserver, callback_host="https://node.example.com/")

    result = adapter.initiate_payout(payout_request())

    assert result.reference == REF
    assert result.status is PayoutStatus.PENDING
    assert result.amount == Decimal("50.00")
    assert result.psp_transaction_id == ""


def test_sandbox_currency_override_puts_eur_on_the_wire(httpserver):
    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_data("", status=202)
    adapter = make_adapter(httpserver, currency="EUR")

    adapter.initiate_payout(payout_request(currency="ZMW", amount="12.50"))

    (sent,) = requests_to(httpserver, "POST", TRANSFER)
    body = json.loads(sent.get_data())
    assert body["currency"] == "EUR"
    assert body["amount"] == "12.5"
    assert "X-Callback-Url" not in sent.headers


def test_token_request_uses_basic_auth_of_api_user_and_key(httpserver):
    expected = "Basic " + base64.b64encode(f"{API_USER}:{API_KEY}".encode()).decode()
    serve(
        httpserver.expect_request(
            TOKEN_PATH,
            method="POST",
            headers={"Authorization": expected, "Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY},
        ),
        "token.json",
    )
    serve(httpserver.expect_request("/disbursement/v1_0/account/balance"), "balance.json")
    adapter = make_adapter(httpserver)

    adapter.get_balances()

    assert len(requests_to(httpserver, "POST", TOKEN_PATH)) == 1


def test_payout_pending_then_successful_via_get_payout(httpserver):
    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_data("", status=202)
    serve(httpserver.expect_oneshot_request(f"{TRANSFER}/{REF}", method="GET"), "transfer_pending.json")
    serve(httpserver.expect_oneshot_request(f"{TRANSFER}/{REF}", method="GET"), "transfer_successful.json")
    adapter = make_adapter(httpserver)

    created = adapter.initiate_payout(payout_request())
    still_pending = adapter.get_payout(reference=REF, currency="ZMW")
    done = adapter.get_payout(reference=REF, currency="ZMW")

    assert created.status is PayoutStatus.PENDING
    assert still_pending.status is PayoutStatus.PENDING
    assert done.status is PayoutStatus.SUCCEEDED
    assert done.psp_transaction_id == "981569077"
    assert done.amount == Decimal("50")
    assert done.failure_reason is None
    assert len(requests_to(httpserver, "POST", TRANSFER)) == 1


def test_failed_transfer_with_bare_string_reason_maps_to_recipient_invalid(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(f"{TRANSFER}/{REF}"), "transfer_failed_string_reason.json")
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=REF, currency="ZMW")

    assert result.status is PayoutStatus.FAILED
    assert result.failure_reason is FailureReason.RECIPIENT_INVALID
    assert result.failure_message == "PAYEE_NOT_FOUND"


def test_failed_transfer_with_code_message_reason_maps_to_insufficient_funds(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(f"{TRANSFER}/{REF}"), "transfer_failed_object_reason.json")
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=REF, currency="ZMW")

    assert result.status is PayoutStatus.FAILED
    assert result.failure_reason is FailureReason.INSUFFICIENT_FUNDS
    assert result.failure_message == "NOT_ENOUGH_FUNDS: The payer does not have enough funds."


def test_unknown_status_maps_to_unknown_without_crashing(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(f"{TRANSFER}/{REF}"), "transfer_unknown_status.json")
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=REF, currency="ZMW")

    assert result.status is PayoutStatus.UNKNOWN
    assert result.raw["status"] == "ONGOING"


def test_get_payout_404_is_not_found(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(f"{TRANSFER}/{REF}"), "not_found.json", status=404)
    adapter = make_adapter(httpserver)

    result = adapter.get_payout(reference=REF, currency="ZMW")

    assert result.status is PayoutStatus.NOT_FOUND
    assert result.reference == REF


def test_get_payout_with_a_non_uuid_reference_is_rejected_without_a_request(httpserver):
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected):
        adapter.get_payout(reference="pn-not-a-uuid", currency="ZMW")

    assert httpserver.log == []


# --- duplicates -----------------------------------------------------------------------------------


def test_409_reused_reference_is_resolved_by_looking_it_up(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(TRANSFER, method="POST"), "duplicate_reference.json", status=409)
    serve(httpserver.expect_request(f"{TRANSFER}/{REF}", method="GET"), "transfer_successful.json")
    adapter = make_adapter(httpserver)

    result = adapter.initiate_payout(payout_request())

    assert result.status is PayoutStatus.SUCCEEDED
    assert result.psp_transaction_id == "981569077"
    assert len(requests_to(httpserver, "POST", TRANSFER)) == 1
    assert len(requests_to(httpserver, "GET", f"{TRANSFER}/{REF}")) == 1


def test_409_whose_look_up_finds_nothing_raises_duplicate_reference(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(TRANSFER, method="POST"), "duplicate_reference.json", status=409)
    serve(httpserver.expect_request(f"{TRANSFER}/{REF}", method="GET"), "not_found.json", status=404)
    adapter = make_adapter(httpserver)

    with pytest.raises(DuplicateReference) as excinfo:
        adapter.initiate_payout(payout_request())

    assert excinfo.value.psp_code == "RESOURCE_ALREADY_EXIST"
    assert excinfo.value.http_status == 409


# --- error classes --------------------------------------------------------------------------------


def test_400_payee_not_found_raises_rejected_recipient_invalid(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(TRANSFER, method="POST"), "payee_not_found.json", status=400)
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.initiate_payout(payout_request())

    assert type(excinfo.value) is PspRejected
    assert excinfo.value.reason is FailureReason.RECIPIENT_INVALID
    assert excinfo.value.psp_code == "PAYEE_NOT_FOUND"
    assert excinfo.value.psp == "mtn_momo"


def test_invalid_msisdn_is_rejected_before_any_request(httpserver):
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.initiate_payout(payout_request(phone="not-a-phone"))

    assert excinfo.value.reason is FailureReason.RECIPIENT_INVALID
    assert httpserver.log == []


def test_local_msisdn_gets_the_configured_country_code(httpserver):
    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_data("", status=202)
    adapter = make_adapter(httpserver, msisdn_country_code="260")

    adapter.initiate_payout(payout_request(phone="0971234567"))

    (sent,) = requests_to(httpserver, "POST", TRANSFER)
    assert json.loads(sent.get_data())["payee"] == {"partyIdType": "MSISDN", "partyId": "260971234567"}


def test_429_with_retry_after_raises_unavailable_with_retry_after(httpserver):
    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_data(
        "", status=429, headers={"Retry-After": "30"}
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(payout_request())

    assert excinfo.value.retry_after == 30.0
    assert excinfo.value.http_status == 429


def test_500_internal_processing_error_raises_unavailable_with_code(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(TRANSFER, method="POST"), "internal_processing_error.json", status=500)
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(payout_request())

    assert excinfo.value.http_status == 500
    assert excinfo.value.psp_code == "INTERNAL_PROCESSING_ERROR"
    assert excinfo.value.reason is FailureReason.OTHER


def test_500_invalid_currency_raises_unavailable_with_unsupported_reason(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request(TRANSFER, method="POST"), "invalid_currency.json", status=500)
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(payout_request())

    assert excinfo.value.psp_code == "INVALID_CURRENCY"
    assert excinfo.value.reason is FailureReason.UNSUPPORTED


def test_400_with_service_unavailable_code_raises_unavailable(httpserver):
    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_json(
        {"code": "SERVICE_UNAVAILABLE", "message": "Service unavailable"}, status=400
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(payout_request())

    assert excinfo.value.psp_code == "SERVICE_UNAVAILABLE"


def test_non_json_502_html_page_raises_unavailable(httpserver):
    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_data(
        "<html><body><h1>502 Bad Gateway</h1></body></html>", status=502, content_type="text/html"
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(payout_request())

    assert excinfo.value.http_status == 502


def test_read_timeout_raises_unavailable_with_timeout_reason(httpserver):

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("", status=202)

    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_handler(slow)
    adapter = make_adapter(httpserver, timeout=Decimal("0.2"))

    with pytest.raises(PspUnavailable) as excinfo:
        adapter.initiate_payout(payout_request())

    assert excinfo.value.reason is FailureReason.TIMEOUT
    wait_until_logged(httpserver, "POST", TRANSFER)


def test_timeout_after_mtn_committed_transfer_is_found_by_reference_without_second_post(httpserver):
    committed: dict[str, dict] = {}

    def create(request: Request) -> Response:
        committed[request.headers["X-Reference-Id"]] = json.loads(request.get_data())  # MTN has it ...
        time.sleep(0.6)  # ... but answers after the client gave up
        return Response("", status=202)

    def status(request: Request) -> Response:
        reference = request.path.rsplit("/", 1)[1]
        if reference not in committed:
            return Response(fixture_bytes("not_found.json"), status=404, content_type=JSON)
        return Response(fixture_bytes("transfer_successful.json"), content_type=JSON)

    serve_token(httpserver)
    httpserver.expect_request(TRANSFER, method="POST").respond_with_handler(create)
    httpserver.expect_request(f"{TRANSFER}/{REF}", method="GET").respond_with_handler(status)
    adapter = make_adapter(httpserver, timeout=Decimal("0.2"))

    with pytest.raises(PspUnavailable):
        adapter.initiate_payout(payout_request())
    wait_until_logged(httpserver, "POST", TRANSFER)
    found = adapter.get_payout(reference=REF, currency="ZMW")

    assert found.status is PayoutStatus.SUCCEEDED
    assert list(committed) == [REF]
    assert len(requests_to(httpserver, "POST", TRANSFER)) == 1


# --- token ----------------------------------------------------------------------------------------


def test_token_is_requested_once_for_several_calls(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request("/disbursement/v1_0/account/balance"), "balance.json")
    serve(httpserver.expect_request(f"{TRANSFER}/{REF}"), "transfer_pending.json")
    adapter = make_adapter(httpserver)

    adapter.get_balances()
    adapter.get_payout(reference=REF, currency="ZMW")
    adapter.get_balances()

    assert len(requests_to(httpserver, "POST", TOKEN_PATH)) == 1
    product_calls = [req for req, _ in httpserver.log if req.path != TOKEN_PATH]
    assert [req.headers["Authorization"] for req in product_calls] == [f"Bearer {ACCESS_TOKEN}"] * 3


def test_token_is_refreshed_a_minute_before_it_expires(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request("/disbursement/v1_0/account/balance"), "balance.json")
    clock = Clock()
    adapter = make_adapter(httpserver, clock=clock)

    adapter.get_balances()
    clock.now += 3539  # expires_in 3600 - 60 s margin - 1 s
    adapter.get_balances()
    tokens_before_refresh = len(requests_to(httpserver, "POST", TOKEN_PATH))
    clock.now += 1
    adapter.get_balances()

    assert tokens_before_refresh == 1
    assert len(requests_to(httpserver, "POST", TOKEN_PATH)) == 2


def test_rejected_token_is_replaced_and_the_call_repeated_once(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_oneshot_request("/disbursement/v1_0/account/balance"), "token_invalid.json", 401)
    serve(httpserver.expect_oneshot_request("/disbursement/v1_0/account/balance"), "balance.json")
    adapter = make_adapter(httpserver)

    balances = adapter.get_balances()

    assert balances == [
        PspBalanceReading(currency="EUR", total=Decimal("1000.55"), available=Decimal("1000.55"))
    ]
    assert len(requests_to(httpserver, "POST", TOKEN_PATH)) == 2


def test_invalid_subscription_key_is_rejected_without_a_token_retry(httpserver):
    serve_token(httpserver)
    serve(
        httpserver.expect_request("/disbursement/v1_0/account/balance"), "subscription_key_invalid.json", 401
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.get_balances()

    assert excinfo.value.http_status == 401
    assert len(requests_to(httpserver, "POST", TOKEN_PATH)) == 1
    assert len(requests_to(httpserver, "GET", "/disbursement/v1_0/account/balance")) == 1


def test_refused_credentials_on_the_token_call_raise_rejected(httpserver):
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_json(
        {"error": "login_failed"}, status=401
    )
    adapter = make_adapter(httpserver)

    with pytest.raises(PspRejected) as excinfo:
        adapter.get_payout(reference=REF, currency="ZMW")

    assert excinfo.value.http_status == 401
    assert requests_to(httpserver, "GET", f"{TRANSFER}/{REF}") == []


# --- resolve and balance --------------------------------------------------------------------------


def test_resolve_account_checks_active_then_reads_the_name(httpserver):
    serve_token(httpserver)
    serve(
        httpserver.expect_request("/disbursement/v1_0/accountholder/msisdn/260971234567/active"),
        "accountholder_active.json",
    )
    serve(
        httpserver.expect_request("/disbursement/v1_0/accountholder/msisdn/260971234567/basicuserinfo"),
        "basicuserinfo.json",
    )
    adapter = make_adapter(httpserver)

    name = adapter.resolve_account(recipient=payout_request().recipient, currency="ZMW")

    assert name == AccountName(account_identifier="260971234567", account_name="Sand Box")


def test_resolve_inactive_account_holder_raises_rejected_recipient_invalid(httpserver):
    serve_token(httpserver)
    serve(
        httpserver.expect_request("/disbursement/v1_0/accountholder/msisdn/46733123451/active"),
        "accountholder_inactive.json",
    )
    adapter = make_adapter(httpserver)
    recipient = Recipient(institution="MOMOUGPC", account_identifier="46733123451")

    with pytest.raises(PspRejected) as excinfo:
        adapter.resolve_account(recipient=recipient, currency="EUR")

    assert excinfo.value.reason is FailureReason.RECIPIENT_INVALID
    assert (
        requests_to(httpserver, "GET", "/disbursement/v1_0/accountholder/msisdn/46733123451/basicuserinfo")
        == []
    )


def test_resolve_unknown_account_holder_404_raises_rejected_recipient_invalid(httpserver):
    serve_token(httpserver)
    serve(
        httpserver.expect_request("/disbursement/v1_0/accountholder/msisdn/46733123450/active"),
        "not_found.json",
        404,
    )
    adapter = make_adapter(httpserver)
    recipient = Recipient(institution="MOMOUGPC", account_identifier="46733123450")

    with pytest.raises(PspRejected) as excinfo:
        adapter.resolve_account(recipient=recipient, currency="EUR")

    assert excinfo.value.reason is FailureReason.RECIPIENT_INVALID


def test_get_balances_parses_available_balance_as_decimal(httpserver):
    serve_token(httpserver)
    serve(httpserver.expect_request("/disbursement/v1_0/account/balance", method="GET"), "balance.json")
    adapter = make_adapter(httpserver)

    (reading,) = adapter.get_balances()

    assert reading == PspBalanceReading(
        currency="EUR", total=Decimal("1000.55"), available=Decimal("1000.55")
    )
    assert isinstance(reading.available, Decimal)


# --- callbacks ------------------------------------------------------------------------------------


def test_callback_becomes_a_notice_with_the_reference_from_the_url_and_a_status_hint(httpserver):
    adapter = make_adapter(httpserver)
    body = fixture_bytes("callback_successful.json")

    notice = adapter.parse_webhook(body=body, headers={"X-Callback-Reference": REF, "Content-Type": JSON})

    assert notice.reference == REF
    assert notice.status is PayoutStatus.SUCCEEDED
    assert notice.event_type == "transfer.successful"
    assert notice.event_id == hashlib.sha256(REF.encode() + b"\n" + body).hexdigest()
    assert notice.payload["financialTransactionId"] == "981569077"


def test_callback_reference_header_is_case_insensitive_and_canonicalised(httpserver):
    adapter = make_adapter(httpserver)

    notice = adapter.parse_webhook(body=b"", headers={"x-callback-reference": REF.upper()})

    assert notice.reference == REF
    assert notice.status is None
    assert notice.event_type == "transfer.callback"


def test_callback_without_reference_is_refused(httpserver):
    adapter = make_adapter(httpserver)

    with pytest.raises(WebhookSignatureInvalid):
        adapter.parse_webhook(body=fixture_bytes("callback_successful.json"), headers={})


def test_callback_whose_external_id_names_another_payout_carries_no_status(httpserver):
    adapter = make_adapter(httpserver)
    other = "9815c859-d3b9-4507-b704-f4a99abe9350"

    notice = adapter.parse_webhook(
        body=fixture_bytes("callback_successful.json"), headers={"X-Callback-Reference": other}
    )

    assert notice.reference == other
    assert notice.status is None


@pytest.mark.parametrize(
    "body",
    [b'{"status":"\\ud800"}', b"[" * 30000 + b"]" * 30000, b'{"status":"SUCCESSFUL\xff"}'],
    ids=["lone_surrogate", "nested_30000", "not_utf8"],
)
def test_callback_body_that_is_not_safe_json_is_refused(httpserver, body):
    adapter = make_adapter(httpserver)

    with pytest.raises(WebhookBodyRefused):
        adapter.parse_webhook(body=body, headers={"X-Callback-Reference": REF})


def test_callback_with_unreadable_body_still_names_the_reference(httpserver):
    adapter = make_adapter(httpserver)

    notice = adapter.parse_webhook(body=b"<xml/>", headers={"X-Callback-Reference": REF})

    assert notice.reference == REF
    assert notice.status is None
