"""MpesaAdapter against the conformance kit's Daraja fake (a real local HTTP server): token sharing, the B2C
request, its refusals and ambiguities, Transaction Status reads answered by callback, Account Balance."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from django.test import Client

from psp import daraja, registry
from psp.base import (
    AmountRefusal,
    DuplicateReference,
    FailureReason,
    PayoutRequest,
    PayoutStatus,
    PspRejected,
    PspUnavailable,
    Recipient,
)
from psp.clients import mpesa
from psp.models import DarajaAnswer, DarajaRequest, DarajaRequestKind, DarajaToken, WebhookEvent
from psp.tests.conformance.fakes import mpesa as fake_module
from psp.tests.conformance.fakes.mpesa import MpesaFake
from psp.tests.conformance.kit import Callback, Refusal, Send, Status

pytestmark = pytest.mark.django_db
ORDER_KEY = "559028af-6e15-4b21-bab5-052a248db249"
REF = "pn559028af6e154b21bab5052a248db249-1"
B2C = "/mpesa/b2c/v3/paymentrequest"
STATUS = "/mpesa/transactionstatus/v1/query"


def adapter() -> mpesa.MpesaAdapter:
    built = registry.adapter("mpesa")
    assert isinstance(built, mpesa.MpesaAdapter)
    return built


def payout(*, amount: str = "1500", phone: str = "254708374149", reference: str = REF) -> PayoutRequest:
    return PayoutRequest(
        reference=reference,
        amount=Decimal(amount),
        currency="KES",
        recipient=Recipient(institution="SAFAKEPC", account_identifier=phone),
        narration="Payout 559028af",
    )


def bodies(fake: MpesaFake, path: str) -> list[dict[str, Any]]:
    return [json.loads(request.data) for request, _ in fake.server.log if request.path == path]


def deliver(client: Client, callback: Callback, capture: Any) -> Any:
    """Post a callback to the node as Daraja would (the task that records it runs on commit)."""
    with capture(execute=True):
        return client.generic("POST", callback.path, data=callback.body, content_type="application/json")


def deliver_owed(client: Client, fake: MpesaFake, capture: Any) -> list[int]:
    return [deliver(client, callback, capture).status_code for callback in fake.owed_callbacks()]


# --- what the adapter takes ------------------------------------------------------------------------


def test_reference_is_the_order_uuid_and_attempt_in_at_most_36_characters(mpesa_fake: MpesaFake) -> None:
    first = adapter().make_reference(order_key=ORDER_KEY, attempt=1)
    tenth = adapter().make_reference(order_key=ORDER_KEY, attempt=10)
    other = adapter().make_reference(order_key="order-42", attempt=1)

    assert first == REF
    assert len(first) == 36
    assert tenth.startswith("pnh")
    assert len(tenth) <= 36
    assert other.startswith("pnh")
    assert other != tenth


def test_supports_kes_to_mpesa_wallets_only(mpesa_fake: MpesaFake) -> None:
    assert adapter().supports(currency="KES", institution="SAFAKEPC")
    assert not adapter().supports(currency="KES", institution="AIRTKEPC")
    assert not adapter().supports(currency="NGN", institution="SAFAKEPC")


@pytest.mark.parametrize(
    ("amount", "refusal"),
    [
        ("9", AmountRefusal.BELOW_MINIMUM),
        ("10", None),
        ("250000", None),
        ("250001", AmountRefusal.ABOVE_MAXIMUM),
        ("100.50", AmountRefusal.UNPAYABLE),
        ("100.00", None),
    ],
)
def test_per_transaction_limits_are_whole_kes_10_to_250000(
    mpesa_fake: MpesaFake, amount: str, refusal: AmountRefusal | None
) -> None:
    assert adapter().amount_refusal(currency="KES", amount=Decimal(amount)) == refusal


def test_an_amount_outside_the_limits_is_refused_before_anything_is_sent(mpesa_fake: MpesaFake) -> None:
    with pytest.raises(PspRejected) as refused:
        adapter().initiate_payout(payout(amount="300000"))

    assert refused.value.reason == FailureReason.LIMIT_EXCEEDED
    assert mpesa_fake.posts() == 0


@pytest.mark.parametrize("phone", ["0708374149", "+254 708 374 149", "708374149", "254708374149"])
def test_local_and_international_msisdns_become_partyb(mpesa_fake: MpesaFake, phone: str) -> None:
    adapter().initiate_payout(payout(phone=phone))

    assert bodies(mpesa_fake, B2C)[0]["PartyB"] == "254708374149"


@pytest.mark.parametrize("phone", ["0208374149", "25470837414", "+256708374149", "not a phone"])
def test_a_number_that_is_not_a_kenyan_mobile_is_refused_unsent(mpesa_fake: MpesaFake, phone: str) -> None:
    with pytest.raises(PspRejected) as refused:
        adapter().initiate_payout(payout(phone=phone))

    assert refused.value.reason == FailureReason.RECIPIENT_INVALID
    assert mpesa_fake.posts() == 0


def test_name_lookup_is_unsupported(mpesa_fake: MpesaFake) -> None:
    with pytest.raises(PspRejected) as refused:
        adapter().resolve_account(
            recipient=Recipient(institution="SAFAKEPC", account_identifier="254708374149"), currency="KES"
        )

    assert refused.value.reason == FailureReason.UNSUPPORTED


# --- the payment request -----------------------------------------------------------------------------


def test_payment_is_posted_with_our_reference_and_secret_callback_urls_and_is_pending(
    mpesa_fake: MpesaFake,
) -> None:
    result = adapter().initiate_payout(payout())

    assert (result.reference, result.status, result.amount) == (REF, PayoutStatus.PENDING, Decimal("1500"))
    [sent] = bodies(mpesa_fake, B2C)
    base = f"http://testserver/webhooks/daraja/{fake_module.CALLBACK_TOKEN}"
    assert sent == {
        "OriginatorConversationID": REF,
        "InitiatorName": "testapi",
        "SecurityCredential": fake_module.SECURITY_CREDENTIAL,
        "CommandID": "BusinessPayment",
        "Amount": "1500",
        "PartyA": "600997",
        "PartyB": "254708374149",
        "Remarks": "Payout 559028af",
        "QueueTimeOutURL": f"{base}/payment-timeout/{REF}",
        "ResultURL": f"{base}/payment/{REF}",
    }
    row = DarajaRequest.objects.get(kind=DarajaRequestKind.PAYMENT)
    assert (row.reference, row.amount, row.send) == (REF, Decimal("1500"), "accepted")
    assert row.conversation_id.startswith("AG_")


def test_a_repeated_reference_is_a_duplicate_never_a_refusal(mpesa_fake: MpesaFake) -> None:
    adapter().initiate_payout(payout())

    with pytest.raises(DuplicateReference):
        adapter().initiate_payout(payout())

    assert mpesa_fake.posts() == 2
    assert len(mpesa_fake.held()) == 1


def test_500_002_1001_without_the_duplicate_text_is_an_unknown_outcome(mpesa_fake: MpesaFake) -> None:
    mpesa_fake.server.expect_oneshot_request(B2C, method="POST").respond_with_json(
        {"requestId": "r-1", "errorCode": "500.002.1001", "errorMessage": "System internal error."},
        status=500,
    )

    with pytest.raises(PspUnavailable) as unknown:
        adapter().initiate_payout(payout())

    assert not isinstance(unknown.value, DuplicateReference)
    assert unknown.value.psp_code == "500.002.1001"


@pytest.mark.parametrize(
    ("refusal", "reason"),
    [
        (Refusal.RECIPIENT_INVALID, FailureReason.RECIPIENT_INVALID),
        (Refusal.LIMIT, FailureReason.LIMIT_EXCEEDED),
        (Refusal.INSUFFICIENT_FUNDS, FailureReason.INSUFFICIENT_FUNDS),
    ],
)
def test_refusals_before_anything_is_queued_are_final(
    mpesa_fake: MpesaFake, refusal: Refusal, reason: FailureReason
) -> None:
    mpesa_fake.script_send(refusal)

    with pytest.raises(PspRejected) as refused:
        adapter().initiate_payout(payout())

    assert not isinstance(refused.value, DuplicateReference)
    assert refused.value.reason == reason
    assert mpesa_fake.held() == []
    assert DarajaRequest.objects.get().send == "refused"


@pytest.mark.parametrize("refusal", [Refusal.SERVICE_DOWN, Refusal.RATE_LIMITED])
def test_faults_and_throttling_are_unknown_outcomes(mpesa_fake: MpesaFake, refusal: Refusal) -> None:
    mpesa_fake.script_send(refusal)

    with pytest.raises(PspUnavailable):
        adapter().initiate_payout(payout())

    assert DarajaRequest.objects.get().send == ""


def test_a_timeout_is_an_unknown_outcome(mpesa_fake: MpesaFake) -> None:
    mpesa_fake.script_send(Send.TIMEOUT_AFTER_COMMIT)

    with pytest.raises(PspUnavailable) as unknown:
        adapter().initiate_payout(payout())

    assert unknown.value.reason == FailureReason.TIMEOUT
    assert len(mpesa_fake.held()) == 1


# --- the shared token ------------------------------------------------------------------------------


def test_one_token_serves_every_process(mpesa_fake: MpesaFake, settings: Any) -> None:
    other_process = mpesa.build_adapter()  # another process: its own adapter, the same database

    adapter().initiate_payout(payout())
    other_process.initiate_payout(payout(reference="pn559028af6e154b21bab5052a248db249-2"))

    assert len(mpesa_fake.tokens) == 1
    assert DarajaToken.objects.get().generation == 1


def test_a_refused_token_is_replaced_once_and_the_post_repeated_with_the_same_reference(
    mpesa_fake: MpesaFake,
) -> None:
    adapter().initiate_payout(payout(reference="pn559028af6e154b21bab5052a248db249-2"))
    # Someone else fetched a token for this app (a replica of another node, a developer's curl): ours dies.
    requests.get(
        mpesa_fake.server.url_for("/oauth/v1/generate"),
        params={"grant_type": "client_credentials"},
        auth=(fake_module.CONSUMER_KEY, fake_module.CONSUMER_SECRET),
        timeout=5,
    )

    result = adapter().initiate_payout(payout())

    assert result.status == PayoutStatus.PENDING
    assert [body["OriginatorConversationID"] for body in bodies(mpesa_fake, B2C)[1:]] == [REF, REF]
    assert len(mpesa_fake.tokens) == 3
    assert len(mpesa_fake.held()) == 2


def test_a_token_another_process_is_refreshing_is_waited_for_not_fetched_again(
    mpesa_fake: MpesaFake,
) -> None:
    store = daraja.DarajaStore(
        app=daraja.app_id(
            base_url=mpesa_fake.node_settings()["MPESA_BASE_URL"], consumer_key="mpesa-fake-consumer-key"
        )
    )
    assert store.token_claim_refresh(generation=store.token_generation(), lease=timedelta(seconds=30))
    issued = requests.get(
        mpesa_fake.server.url_for("/oauth/v1/generate"),
        params={"grant_type": "client_credentials"},
        auth=(fake_module.CONSUMER_KEY, fake_module.CONSUMER_SECRET),
        timeout=5,
    ).json()["access_token"]
    waits: list[float] = []

    def other_process_finishes(seconds: float) -> None:
        waits.append(seconds)
        store.token_save(value=issued, lifetime=timedelta(seconds=3599), margin=timedelta(seconds=120))

    waiting = mpesa.build_adapter()
    waiting._sleep = other_process_finishes

    waiting.initiate_payout(payout())

    assert len(waits) == 1
    assert mpesa_fake.tokens == [issued]


def test_a_token_due_for_refresh_is_replaced_by_one_claim(mpesa_fake: MpesaFake) -> None:
    adapter().initiate_payout(payout(reference="pn559028af6e154b21bab5052a248db249-2"))
    DarajaToken.objects.update(refresh_at=datetime(2000, 1, 1, tzinfo=UTC))

    adapter().initiate_payout(payout())

    assert len(mpesa_fake.tokens) == 2
    assert DarajaToken.objects.get().generation == 2


# --- reads: Transaction Status, answered by callback -----------------------------------------------


def test_a_read_sends_a_status_query_and_returns_pending_for_an_accepted_payment(
    mpesa_fake: MpesaFake,
) -> None:
    adapter().initiate_payout(payout())

    result = adapter().get_payout(reference=REF, currency="KES")

    assert result.status == PayoutStatus.PENDING
    [query] = bodies(mpesa_fake, STATUS)
    key = DarajaRequest.objects.get(kind=DarajaRequestKind.STATUS).key
    base = f"http://testserver/webhooks/daraja/{fake_module.CALLBACK_TOKEN}"
    assert query == {
        "Initiator": "testapi",
        "SecurityCredential": fake_module.SECURITY_CREDENTIAL,
        "CommandID": "TransactionStatusQuery",
        "OriginalConversationID": REF,
        "PartyA": "600997",
        "IdentifierType": "4",
        "ResultURL": f"{base}/status/{key}",
        "QueueTimeOutURL": f"{base}/status-timeout/{key}",
        "Remarks": "Payout status",
    }


def test_each_read_asks_again_while_no_answer_is_waiting(mpesa_fake: MpesaFake) -> None:
    """No callback came (lost, or not yet): every read is a new query, so a lost callback is replaced by
    the lane's next read, never waited for."""
    adapter().initiate_payout(payout())

    answers = [adapter().get_payout(reference=REF, currency="KES").status for _ in range(3)]

    assert answers == [PayoutStatus.PENDING] * 3
    assert len(bodies(mpesa_fake, STATUS)) == 3


def test_an_answer_serves_the_read_its_callback_made_due_then_the_next_read_asks_again(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    assert deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks) == [200]

    taken = adapter().get_payout(reference=REF, currency="KES")
    assert len(bodies(mpesa_fake, STATUS)) == 1  # the waiting answer served this read: no query-loop

    again = adapter().get_payout(reference=REF, currency="KES")

    assert (taken.status, again.status) == (PayoutStatus.PENDING, PayoutStatus.PENDING)
    assert len(bodies(mpesa_fake, STATUS)) == 2


def test_a_duplicate_refusal_is_looked_up_at_once(mpesa_fake: MpesaFake) -> None:
    adapter().initiate_payout(payout())

    with pytest.raises(DuplicateReference):
        adapter().initiate_payout(payout())

    [query] = bodies(mpesa_fake, STATUS)
    assert query["OriginalConversationID"] == REF


def test_completed_is_success_with_the_receipt_once_safaricom_answers(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    mpesa_fake.finish(REF, Status.SUCCEEDED)

    assert deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks) == [200]
    result = adapter().get_payout(reference=REF, currency="KES")

    assert result.status == PayoutStatus.SUCCEEDED
    assert result.psp_transaction_id == mpesa_fake.payouts[REF].psp_id
    assert (result.amount, result.fee) == (Decimal("1500"), Decimal("22.40"))
    assert result.completed_at == datetime(2024, 7, 6, 19, 48, 53, tzinfo=UTC)
    assert len(bodies(mpesa_fake, STATUS)) == 1  # a final answer needs no new query


@pytest.mark.parametrize("status", ["Declined", "Cancelled", "Expired"])
def test_a_final_failed_status_is_a_failure(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any, status: str
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    [callback] = mpesa_fake.owed_callbacks()

    deliver(client, _with_status(callback, status), django_capture_on_commit_callbacks)
    result = adapter().get_payout(reference=REF, currency="KES")

    assert result.status == PayoutStatus.FAILED
    assert result.failure_message == f"M-Pesa: the payment is {status}"


def test_an_undocumented_status_stays_pending(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    [callback] = mpesa_fake.owed_callbacks()

    deliver(client, _with_status(callback, "Failed"), django_capture_on_commit_callbacks)

    assert adapter().get_payout(reference=REF, currency="KES").status == PayoutStatus.PENDING


def test_completed_for_another_amount_goes_to_a_human(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    mpesa_fake.finish(REF, Status.SUCCEEDED)
    mpesa_fake.payouts[REF].amount = Decimal("15000")

    deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks)

    assert adapter().get_payout(reference=REF, currency="KES").status == PayoutStatus.UNKNOWN


def test_an_answer_about_another_payment_is_not_an_answer(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    mpesa_fake.finish(REF, Status.SUCCEEDED)
    [callback] = mpesa_fake.owed_callbacks()
    body = callback.body.replace(REF.encode(), b"pn00000000000000000000000000000000-1")

    deliver(client, Callback(path=callback.path, body=body), django_capture_on_commit_callbacks)

    assert DarajaRequest.objects.get(kind=DarajaRequestKind.STATUS).answer == DarajaAnswer.ERROR
    assert adapter().get_payout(reference=REF, currency="KES").status == PayoutStatus.PENDING


def test_nothing_is_known_after_a_timeout_until_safaricom_answers(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    mpesa_fake.script_send(Send.TIMEOUT_BEFORE_COMMIT)
    with pytest.raises(PspUnavailable):
        adapter().initiate_payout(payout())

    with pytest.raises(PspUnavailable):
        adapter().get_payout(reference=REF, currency="KES")  # asks; the answer comes by callback
    deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks)
    result = adapter().get_payout(reference=REF, currency="KES")

    assert result.status == PayoutStatus.NOT_FOUND
    assert len(bodies(mpesa_fake, STATUS)) == 1


def test_not_found_before_a_new_send_is_stale(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    mpesa_fake.script_send(Send.TIMEOUT_BEFORE_COMMIT)
    with pytest.raises(PspUnavailable):
        adapter().initiate_payout(payout())
    with pytest.raises(PspUnavailable):
        adapter().get_payout(reference=REF, currency="KES")
    deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks)
    adapter().initiate_payout(payout())  # the node sends again, with the same reference

    result = adapter().get_payout(reference=REF, currency="KES")

    assert result.status == PayoutStatus.PENDING
    assert len(bodies(mpesa_fake, STATUS)) == 2  # the send was news: asked again at once


def test_a_lagging_not_found_after_an_accepted_send_is_reported_as_not_found(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    mpesa_fake.lag_reads(1)
    adapter().get_payout(reference=REF, currency="KES")

    deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks)

    assert adapter().get_payout(reference=REF, currency="KES").status == PayoutStatus.NOT_FOUND


def test_a_payment_callback_makes_the_next_read_ask_again_at_once(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks)  # Initiated
    mpesa_fake.finish(REF, Status.SUCCEEDED)

    deliver(client, mpesa_fake.payment_callback(REF), django_capture_on_commit_callbacks)
    pending = adapter().get_payout(reference=REF, currency="KES")
    deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks)
    paid = adapter().get_payout(reference=REF, currency="KES")

    assert (pending.status, paid.status) == (PayoutStatus.PENDING, PayoutStatus.SUCCEEDED)
    assert len(bodies(mpesa_fake, STATUS)) == 2


def test_a_status_timeout_callback_is_no_answer(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    key = DarajaRequest.objects.get(kind=DarajaRequestKind.STATUS).key
    path = f"/webhooks/daraja/{fake_module.CALLBACK_TOKEN}/status-timeout/{key}"

    deliver(
        client, Callback(path=path, body=b'{"Result": {"ResultCode": 1}}'), django_capture_on_commit_callbacks
    )

    assert DarajaRequest.objects.get(kind=DarajaRequestKind.STATUS).answer == DarajaAnswer.TIMEOUT
    assert adapter().get_payout(reference=REF, currency="KES").status == PayoutStatus.PENDING


def test_a_query_is_answered_once(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    adapter().initiate_payout(payout())
    adapter().get_payout(reference=REF, currency="KES")
    [callback] = mpesa_fake.owed_callbacks()
    deliver(client, _with_status(callback, "Completed"), django_capture_on_commit_callbacks)

    deliver(client, _with_status(callback, "Declined"), django_capture_on_commit_callbacks)

    assert adapter().get_payout(reference=REF, currency="KES").status == PayoutStatus.SUCCEEDED
    assert [event.outcome for event in WebhookEvent.objects.order_by("pk")] == [
        "succeeded",
        "already_answered",
    ]


def test_a_refusal_naming_transaction_id_is_asked_again_with_it_empty(mpesa_fake: MpesaFake) -> None:
    adapter().initiate_payout(payout())
    mpesa_fake.server.expect_oneshot_request(STATUS, method="POST").respond_with_json(
        {
            "requestId": "r-2",
            "errorCode": "400.002.02",
            "errorMessage": "Bad Request - Invalid TransactionID",
        },
        status=400,
    )

    result = adapter().get_payout(reference=REF, currency="KES")

    assert result.status == PayoutStatus.PENDING
    sent = [body for body in bodies(mpesa_fake, STATUS)]
    assert ["TransactionID" in body for body in sent] == [False, True]
    assert sent[1]["TransactionID"] == ""


# --- balance ---------------------------------------------------------------------------------------


def test_balance_is_the_utility_account_from_the_result_callback(
    mpesa_fake: MpesaFake, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    mpesa_fake.set_balance("KES", Decimal("228037.00"))
    reading = adapter()

    def daraja_answers_meanwhile(seconds: float) -> None:
        deliver_owed(client, mpesa_fake, django_capture_on_commit_callbacks)

    reading._sleep = daraja_answers_meanwhile

    [balance] = reading.get_balances()

    assert (balance.currency, balance.total, balance.available) == (
        "KES",
        Decimal("228037.00"),
        Decimal("228037.00"),
    )


def test_balance_without_its_callback_in_time_is_unavailable(mpesa_fake: MpesaFake) -> None:
    with pytest.raises(PspUnavailable) as unavailable:
        adapter().get_balances()

    assert unavailable.value.reason == FailureReason.TIMEOUT


# --- the security credential ---------------------------------------------------------------------------


def test_security_credential_is_the_password_encrypted_with_pkcs1_v15() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apicrypt.safaricom.co.ke")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2034, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(Encoding.PEM)
    der = certificate.public_bytes(Encoding.DER)

    first = mpesa.security_credential(password="Safaricom999!*!", certificate=pem)
    second = mpesa.security_credential(password="Safaricom999!*!", certificate=der)

    assert first != second  # PKCS #1 v1.5 padding is random
    for credential in (first, second):
        assert key.decrypt(base64.b64decode(credential), padding.PKCS1v15()) == b"Safaricom999!*!"


def _with_status(callback: Callback, status: str) -> Callback:
    body = json.loads(callback.body)
    for parameter in body["Result"]["ResultParameters"]["ResultParameter"]:
        if parameter["Key"] == "TransactionStatus":
            parameter["Value"] = status
    return Callback(path=callback.path, body=json.dumps(body).encode())
