"""MTN MoMo Open API, Disbursement, over real HTTP (protocol/mtn-momo.md), paying UGX to an MTN Uganda wallet.

Serves the token call, ``POST /disbursement/v1_0/transfer`` (``X-Reference-Id`` is the reference: 202 with
an empty body, 409 ``RESOURCE_ALREADY_EXIST`` for a reference it holds), ``GET .../transfer/{reference}``
(404 ``RESOURCE_NOT_FOUND``), the balance and the account-holder reads, shaped like the answers in
psp/tests/fixtures/mtn_momo/. Callbacks are MTN's: the status object, unsigned, PUT to the callback URL
that carries our reference (``/webhooks/mtn_momo/<reference>``).

Refusals at the create call are rendered as MTN's request-level errors, classified by ``code`` as the
document asks (its HTTP status is 400 or 500 depending on the source; 400 here, the form the adapter can
call final): ``PAYEE_NOT_FOUND``, ``NOT_ENOUGH_FUNDS``, ``PAYER_LIMIT_REACHED``; a 503
``SERVICE_UNAVAILABLE``; a 429 with ``Retry-After``.
"""

from __future__ import annotations

import re
import threading
import uuid
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

from werkzeug import Request, Response

from psp.tests.conformance.fakes.wire import (
    CLIENT_TIMEOUT,
    Script,
    answer_late,
    json_answer,
    json_body,
)
from psp.tests.conformance.kit import Callback, FakePayout, PspFake, Refusal, Send, Status
from psp.tests.helpers import fixture

SUBSCRIPTION_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
API_USER = "3f8b2c1a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
API_KEY = "b1c2d3e4f5a67890b1c2d3e4f5a67890"
TOKEN = "kit-mtn-access-token"
TRANSFER = "/disbursement/v1_0/transfer"
_WORDS = {Status.PENDING: "PENDING", Status.SUCCEEDED: "SUCCESSFUL", Status.FAILED: "FAILED"}
_REFUSALS = {
    Refusal.RECIPIENT_INVALID: (400, "PAYEE_NOT_FOUND", "Payee does not exist"),
    Refusal.INSUFFICIENT_FUNDS: (400, "NOT_ENOUGH_FUNDS", "The payer does not have enough funds."),
    Refusal.LIMIT: (400, "PAYER_LIMIT_REACHED", "The payer's limit has been reached."),
    Refusal.SERVICE_DOWN: (503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable."),
}


class MtnMomoFake(PspFake):
    name = "mtn_momo"
    currency = "UGX"
    institution = "MOMOUGPC"
    account = "256772123456"
    account_name = "NAKATO AMINA"
    amount = Decimal("150000")
    duplicate_forms = ("resource_already_exist",)  # 409, mtn-momo.md section 6: the only documented form
    capabilities: ClassVar[dict[str, str]] = {
        "signed_webhooks": (
            "MTN callbacks are unsigned (mtn-momo.md section 11): the node trusts nothing in them and reads "
            "the transfer by the reference in the callback URL (the suite's callback tests cover that)"
        ),
        "reversal": "MTN documents no reversal of a successful transfer (PENDING, SUCCESSFUL, FAILED only)",
        "bank_list": "MTN MoMo pays MTN wallets only: there is no institution list",
        "synchronous_success": "a transfer POST answers 202 (queued) only; the outcome is read afterwards",
    }

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.script = Script()
        self.lock = threading.Lock()
        self.balance = Decimal("50000000")
        self.callback_urls: dict[str, str] = {}  # reference -> the X-Callback-Url its POST named

    def node_settings(self) -> dict[str, Any]:
        return {
            "MTN_MOMO_BASE_URL": self.server.url_for("/"),
            "MTN_MOMO_SUBSCRIPTION_KEY": SUBSCRIPTION_KEY,
            "MTN_MOMO_API_USER": API_USER,
            "MTN_MOMO_API_KEY": API_KEY,
            "MTN_MOMO_TARGET_ENVIRONMENT": "mtnuganda",
            "MTN_MOMO_CURRENCY": "",  # production: the order's currency on the wire
            "MTN_MOMO_CALLBACK_HOST": "https://node.example.com",
            "MTN_MOMO_TIMEOUT_SECONDS": CLIENT_TIMEOUT,
        }

    def install(self) -> None:
        server = self.server
        server.expect_request("/disbursement/token/", method="POST").respond_with_handler(self._token)
        server.expect_request(TRANSFER, method="POST").respond_with_handler(self._create)
        server.expect_request(
            re.compile(rf"^{TRANSFER}/(?P<reference>[^/]+)$"), method="GET"
        ).respond_with_handler(self._read)
        server.expect_request("/disbursement/v1_0/account/balance", method="GET").respond_with_handler(
            self._balance
        )
        server.expect_request(
            re.compile(
                r"^/disbursement/v1_0/accountholder/msisdn/(?P<msisdn>[0-9]+)/(active|basicuserinfo)$"
            ),
            method="GET",
        ).respond_with_handler(self._account_holder)

    # --- scripting -------------------------------------------------------------------------------------

    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        if duplicate_form and duplicate_form not in self.duplicate_forms:
            raise ValueError(f"MTN has no duplicate form {duplicate_form!r}")
        self.script.add(behaviour, duplicate_form)

    def lag_reads(self, count: int) -> None:
        self.script.lag(count)

    def finish(self, reference: str, status: Status) -> None:
        with self.lock:
            payout = self.payouts[reference]
            payout.status = status
            if status == Status.SUCCEEDED and not payout.psp_id:
                payout.psp_id = str(uuid.uuid4().int)[:9]

    def is_create(self, path: str, method: str) -> bool:
        return method == "POST" and path == TRANSFER

    def callback(self, reference: str, *, forged: bool = False) -> Callback:
        with self.lock:
            body = json_answer(self._transfer(self.payouts[reference])).get_data()
            url = self.callback_urls.get(reference, "")
        if not url:
            raise ValueError(f"the POST of {reference} named no X-Callback-Url: MTN calls nobody back")
        # MTN calls the URL the POST named (its host must be the registered one). Unsigned: a forged
        # callback is one its only "authentication" refuses, a URL without a payout's reference.
        path = urlsplit(url).path
        if forged:
            path = path.rsplit("/", 1)[0] + "/not-a-reference"
        return Callback(path=path, body=body, headers={"CONTENT_TYPE": "application/json"}, method="PUT")

    def set_balance(self, currency: str, amount: Decimal) -> None:
        assert currency == self.currency, f"this MTN account holds {self.currency} only"
        self.balance = amount

    # --- handlers -------------------------------------------------------------------------------------

    def _refused_auth(self, request: Request) -> Response | None:
        if request.headers.get("Ocp-Apim-Subscription-Key") != SUBSCRIPTION_KEY:
            return Response(fixture("mtn_momo", "subscription_key_invalid.json"), status=401)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response(fixture("mtn_momo", "token_invalid.json"), status=401)
        return None

    def _token(self, request: Request) -> Response:
        if request.headers.get("Ocp-Apim-Subscription-Key") != SUBSCRIPTION_KEY:
            return Response(fixture("mtn_momo", "subscription_key_invalid.json"), status=401)
        return json_answer({"access_token": TOKEN, "token_type": "access_token", "expires_in": 3600})

    def _create(self, request: Request) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        reference = request.headers.get("X-Reference-Id", "")
        body = json_body(request)
        behaviour, duplicate_form = self.script.next_send()
        if duplicate_form:
            return Response(fixture("mtn_momo", "duplicate_reference.json"), status=409)
        if behaviour is Send.TIMEOUT_BEFORE_COMMIT:
            answer_late()
            return Response(fixture("mtn_momo", "internal_processing_error.json"), status=500)
        if behaviour is Refusal.RATE_LIMITED:
            return Response("", status=429, headers={"Retry-After": "30"})
        if isinstance(behaviour, Refusal):
            status, code, message = _REFUSALS[behaviour]
            return json_answer({"code": code, "message": message}, status=status)
        with self.lock:
            if reference in self.payouts:
                return Response(fixture("mtn_momo", "duplicate_reference.json"), status=409)
            payee = body.get("payee") or {}
            if body.get("currency") != self.currency or body.get("externalId") != reference:
                return json_answer(
                    {"code": "INVALID_CURRENCY", "message": "Currency not supported."}, status=500
                )
            payout = FakePayout(
                reference=reference,
                amount=Decimal(str(body.get("amount"))),
                currency=str(body.get("currency")),
                account=str(payee.get("partyId") or ""),
            )
            self.payouts[reference] = payout
            self.callback_urls[reference] = request.headers.get("X-Callback-Url", "")
            if behaviour is Send.SUCCEEDED:  # MTN never answers success at once: 202 all the same
                payout.status = Status.SUCCEEDED
                payout.psp_id = str(uuid.uuid4().int)[:9]
        if behaviour is Send.TIMEOUT_AFTER_COMMIT:
            answer_late()
        return Response("", status=202)

    def _read(self, request: Request) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        reference = request.path.rsplit("/", 1)[-1]
        with self.lock:
            payout = self.payouts.get(reference)
            if payout is not None and not self.script.read_lags():
                return json_answer(self._transfer(payout))
        return Response(fixture("mtn_momo", "not_found.json"), status=404, content_type="application/json")

    def _balance(self, request: Request) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        return json_answer({"availableBalance": format(self.balance, "f"), "currency": self.currency})

    def _account_holder(self, request: Request) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        msisdn = request.path.split("/")[-2]
        if request.path.endswith("/active"):
            return json_answer({"result": True})
        name = self.name_of(msisdn)
        given, _, family = name.partition(" ")
        return json_answer({"sub": "0", "name": name, "given_name": given, "family_name": family})

    def _transfer(self, payout: FakePayout) -> dict[str, object]:
        transfer: dict[str, object] = {
            "amount": format(payout.amount.normalize(), "f"),
            "currency": payout.currency,
            "externalId": payout.reference,
            "payee": {"partyIdType": "MSISDN", "partyId": payout.account},
            "payerMessage": "Payout",
            "payeeNote": "Payout",
            "status": _WORDS.get(payout.status, str(payout.status).upper()),
        }
        if payout.status == Status.SUCCEEDED:
            transfer["financialTransactionId"] = payout.psp_id
        if payout.status == Status.FAILED:
            transfer["reason"] = {
                "code": "NOT_ENOUGH_FUNDS",
                "message": "The payer does not have enough funds.",
            }
        return transfer
