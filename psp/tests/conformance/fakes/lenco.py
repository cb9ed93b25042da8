"""Lenco over real HTTP (protocol/lenco.md): the v1 API (NGN bank transfers over NIP) and the v2 API (ZMW and
MWK bank and mobile-money transfers), one PSP with both, as the node's ``lenco`` adapter sees it.

The fake serves every path the adapter calls, in Lenco's envelope (``{status, message, data, errorCode}``),
shaped like the recorded answers in psp/tests/fixtures/lenco/: the queued v1 ``POST /transfer`` and its
``GET /transfer/by-reference/:reference`` (``{request, transaction}``), the v2 ``POST /transfers/<type>`` and
``GET /transfers/status/:reference``, the accounts lists (balances), resolve, banks, and the signed
``transaction.*`` (v1) / ``transfer.*`` (v2) webhooks. Like Lenco it refuses a reference it already holds
(400, the first documented duplicate form), so it never holds two payouts for one reference.

Three fakes of the one adapter, told apart by ``variant``: ``ngn`` (v1, a NUBAN at Access Bank),
``mwk-momo`` (v2, a TNM Mpamba wallet in Malawi) and ``zmw-bank`` (v2, an account at Zanaco in Zambia).
"""

from __future__ import annotations

import re
import threading
import uuid
from decimal import Decimal
from typing import Any, ClassVar

from werkzeug import Request, Response

from psp.clients.lenco import webhook_signature
from psp.tests.conformance.fakes.wire import (
    CLIENT_TIMEOUT,
    Script,
    answer_late,
    json_answer,
    json_body,
)
from psp.tests.conformance.kit import Callback, FakePayout, PspFake, Refusal, Send, Status
from psp.tests.helpers import fixture

API_KEY = "kit-lenco-token"
ACCOUNTS = {  # our Lenco accounts, one per currency (the adapter finds the one active account of each)
    "NGN": "6f2c3a9e-1b7d-4c55-9e0a-3d8b2f41c7aa",
    "ZMW": "a1b2c3d4-e5f6-4789-8abc-def012345678",
    "MWK": "b2c3d4e5-f6a7-4890-9bcd-ef0123456789",
}
V1_BANKS = [("000014", "ACCESS BANK"), ("000015", "ZENITH BANK"), ("000013", "GUARANTY TRUST BANK")]
V2_BANKS = {
    "mw": [("b5a1e0c2-1f43-4d8e-9a77-0c1d2e3f4a01", "National Bank of Malawi")],
    "zm": [("c6b2f1d3-2e54-4e9f-8b88-1d2e3f4a5b02", "Zanaco")],
}
CREATE_PATHS = frozenset({"/v1/transfer", "/v2/transfers/mobile-money", "/v2/transfers/bank-account"})
DUPLICATE_FORMS = ("error_code", "message_only")  # lenco.md section 7: with errorCode "04" (+ errors), or not
_WORDS = {Status.PENDING: "pending", Status.SUCCEEDED: "successful", Status.FAILED: "failed"}
_AT = "2024-05-02T10:15:04.447Z"


class LencoFake(PspFake):
    """Lenco, both APIs. Subclasses say which order the suite pays (currency, institution, account)."""

    @property
    def psp_code(self) -> str:
        """The bank code, bankId or operator the adapter must send for the order's institution."""
        return self.psp_institution.rpartition(":")[2]

    name = "lenco"
    api: ClassVar[str]  # "v1" or "v2": which API the order's currency goes through
    psp_institution: ClassVar[str]  # what the node maps the institution to (NIP code, "momo:<operator>")
    duplicate_forms = DUPLICATE_FORMS

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.script = Script()
        self.lock = threading.Lock()
        self.api_of: dict[str, str] = {}  # reference -> the API it was sent through
        self.balances = {currency: Decimal("5000000.00") for currency in ACCOUNTS}

    # --- wiring ------------------------------------------------------------------------------------------

    def node_settings(self) -> dict[str, Any]:
        return {
            "LENCO_BASE_URL": self.server.url_for("/v1").rstrip("/"),
            "LENCO_V2_BASE_URL": self.server.url_for("/v2").rstrip("/"),
            "LENCO_API_KEY": API_KEY,
            "LENCO_ACCOUNT_ID": "",  # one account per currency: the adapter picks it from the accounts list
            "LENCO_TIMEOUT_SECONDS": CLIENT_TIMEOUT,
        }

    def institution_mappings(self) -> list[tuple[str, str]]:
        return [(self.institution, self.psp_institution)]

    def install(self) -> None:
        server = self.server
        for path in CREATE_PATHS:
            server.expect_request(path, method="POST").respond_with_handler(self._create)
        server.expect_request(
            re.compile(r"^/v1/transfer/by-reference/(?P<reference>[^/]+)$"), method="GET"
        ).respond_with_handler(lambda request: self._read(request, "v1"))
        server.expect_request(
            re.compile(r"^/v2/transfers/status/(?P<reference>[^/]+)$"), method="GET"
        ).respond_with_handler(lambda request: self._read(request, "v2"))
        server.expect_request("/v1/accounts", method="GET").respond_with_handler(self._accounts_v1)
        server.expect_request("/v2/accounts", method="GET").respond_with_handler(self._accounts_v2)
        server.expect_request("/v1/resolve", method="GET").respond_with_handler(self._resolve_v1)
        server.expect_request(re.compile(r"^/v2/resolve/[a-z-]+$"), method="POST").respond_with_handler(
            self._resolve_v2
        )
        server.expect_request("/v1/banks", method="GET").respond_with_handler(self._banks_v1)
        server.expect_request("/v2/banks", method="GET").respond_with_handler(self._banks_v2)

    # --- scripting -------------------------------------------------------------------------------------

    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        if duplicate_form and duplicate_form not in self.duplicate_forms:
            raise ValueError(f"lenco has no duplicate form {duplicate_form!r}")
        self.script.add(behaviour, duplicate_form)

    def lag_reads(self, count: int) -> None:
        self.script.lag(count)

    def finish(self, reference: str, status: Status) -> None:
        with self.lock:
            payout = self.payouts[reference]
            payout.status = status
            if status == Status.SUCCEEDED and not payout.psp_id:
                payout.psp_id = _psp_id(self.api_of[reference])

    def is_create(self, path: str, method: str) -> bool:
        return method == "POST" and path in CREATE_PATHS

    def callback(self, reference: str, *, forged: bool = False) -> Callback:
        with self.lock:
            payout = self.payouts[reference]
            api = self.api_of[reference]
            if payout.status not in (Status.SUCCEEDED, Status.FAILED):
                raise ValueError(f"Lenco sends no webhook for a {payout.status} transfer")
            if api == "v1":
                event = f"transaction.{_WORDS[payout.status]}"
                data = self._v1_transaction(payout)
            else:
                event = f"transfer.{_WORDS[payout.status]}"
                data = self._v2_transfer(payout)
        body = json_answer({"event": event, "data": data}).get_data()
        key = "not-our-lenco-token" if forged else API_KEY
        return Callback(
            path="/webhooks/lenco",
            body=body,
            headers={
                "CONTENT_TYPE": "application/json",
                "HTTP_X_LENCO_SIGNATURE": webhook_signature(body=body, api_key=key),
            },
        )

    def set_balance(self, currency: str, amount: Decimal) -> None:
        self.balances[currency] = amount

    # --- handlers -------------------------------------------------------------------------------------

    def _refused_auth(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") == f"Bearer {API_KEY}":
            return None
        return json_answer(
            {"status": False, "message": "Unauthorized", "data": [], "errorCode": "09"}, status=401
        )

    def _create(self, request: Request) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        api = "v1" if request.path.startswith("/v1/") else "v2"
        body = json_body(request)
        reference = str(body.get("reference") or "")
        behaviour, duplicate_form = self.script.next_send()
        if duplicate_form:
            return self._duplicate(duplicate_form, api, reference)
        if behaviour is Send.TIMEOUT_BEFORE_COMMIT:
            answer_late()
            return Response(fixture("lenco", "gateway_502.html"), status=504, content_type="text/html")
        if isinstance(behaviour, Refusal):
            return self._refusal(behaviour, api)
        with self.lock:
            if reference in self.payouts:  # Lenco never takes a reference twice
                return self._duplicate(DUPLICATE_FORMS[0], api, reference)
            account = str(body.get("accountNumber") or body.get("phone") or "")
            if (
                body.get("accountId") != ACCOUNTS.get(self.currency)
                or not account
                or body.get("bankCode", body.get("bankId", body.get("operator"))) != self.psp_code
            ):
                return json_answer(
                    {"status": False, "message": "Validation failed", "data": [], "errorCode": "01"},
                    status=400,
                )
            payout = FakePayout(
                reference=reference,
                amount=Decimal(str(body.get("amount"))),
                currency=self.currency,
                account=account,
            )
            self.payouts[reference] = payout
            self.api_of[reference] = api
            if behaviour is Send.SUCCEEDED:
                payout.status = Status.SUCCEEDED
                payout.psp_id = _psp_id(api)
            answer = self._payout_data(payout, api, created=True)
        if behaviour is Send.TIMEOUT_AFTER_COMMIT:
            answer_late()
        return json_answer({"status": True, "message": "", "data": answer})

    def _read(self, request: Request, api: str) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        reference = request.path.rsplit("/", 1)[-1]
        with self.lock:
            payout = self.payouts.get(reference)
            if payout is not None and not self.script.read_lags():
                return json_answer(
                    {"status": True, "message": "", "data": self._payout_data(payout, api, created=False)}
                )
        if api == "v1":
            return Response(
                fixture("lenco", "v1_not_found.json"), status=400, content_type="application/json"
            )
        return Response(fixture("lenco", "v2_not_found.json"), status=404, content_type="application/json")

    def _duplicate(self, form: str, api: str, reference: str) -> Response:
        message = "Duplicate client reference" if api == "v1" else "Duplicate reference"
        payload: dict[str, object] = {
            "status": False,
            "message": message,
            "data": [] if api == "v1" else None,
        }
        if form == "error_code":
            payload["errorCode"] = "04"
            payload["errors"] = {reference: {"errorCode": "04", "errorMessage": message}}
        return json_answer(payload, status=400)

    def _refusal(self, refusal: Refusal, api: str) -> Response:
        empty: object = [] if api == "v1" else None
        if refusal is Refusal.SERVICE_DOWN:
            return Response(fixture("lenco", "gateway_502.html"), status=502, content_type="text/html")
        if refusal is Refusal.RATE_LIMITED:
            return json_answer(
                {"status": False, "message": "Too many requests", "data": empty},
                status=429,
                headers={"Retry-After": "30"},
            )
        code, message = {
            Refusal.RECIPIENT_INVALID: ("05", "Invalid recipient account")
            if self.psp_institution[:5] != "momo:"
            else ("12", "Mobile number invalid"),
            Refusal.INSUFFICIENT_FUNDS: ("02", "Insufficient funds in your account"),
            Refusal.LIMIT: ("03", "Account transfer limit exceeded"),
        }[refusal]
        return json_answer(
            {"status": False, "message": message, "data": empty, "errorCode": code}, status=400
        )

    def _accounts_v1(self, request: Request) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        ngn = ACCOUNTS["NGN"]
        balance = format(self.balances["NGN"], "f")
        account = {
            "id": ngn,
            "name": "Provision Node Ltd",
            "currency": "NGN",
            "bankAccount": {
                "accountName": "Provision Node Ltd",
                "accountNumber": "1234567890",
                "bank": {"code": "999129", "name": "Lenco"},
            },
            "type": "Business",
            "status": "active",
            "availableBalance": balance,
            "currentBalance": balance,
            "createdAt": "2024-01-01T00:00:00.447Z",
        }
        return json_answer(
            {
                "status": True,
                "message": "",
                "data": [account],
                "meta": {"total": 1, "perPage": 50, "currentPage": 1, "pageCount": 1},
            }
        )

    def _accounts_v2(self, request: Request) -> Response:
        refused = self._refused_auth(request)
        if refused:
            return refused
        accounts = [
            {
                "id": ACCOUNTS[currency],
                "details": {"type": "lenco-money", "accountName": f"Provision Node {currency}"},
                "type": "lenco-money",
                "status": "active",
                "createdAt": "2024-03-01T08:00:00.000Z",
                "currency": currency,
                "availableBalance": format(self.balances[currency], "f"),
                "ledgerBalance": format(self.balances[currency], "f"),
            }
            for currency in ("ZMW", "MWK")
        ]
        return json_answer(
            {
                "status": True,
                "message": "",
                "data": accounts,
                "meta": {"total": 2, "perPage": 100, "currentPage": 1, "pageCount": 1},
            }
        )

    def _resolve_v1(self, request: Request) -> Response:
        account = request.args.get("accountNumber", "")
        code = request.args.get("bankCode", "")
        banks = dict(V1_BANKS)
        if code not in banks or not re.fullmatch(r"[0-9]{10}", account):
            return json_answer(
                {"status": False, "message": "Account Details could not be verified", "data": []}, status=400
            )
        return json_answer(
            {
                "status": True,
                "message": "",
                "data": {
                    "accountName": self.name_of(account),
                    "accountNumber": account,
                    "bank": {"code": code, "name": banks[code]},
                },
            }
        )

    def _resolve_v2(self, request: Request) -> Response:
        body = json_body(request)
        if request.path.endswith("/mobile-money"):
            phone = str(body.get("phone") or "")
            return json_answer(
                {
                    "status": True,
                    "message": "",
                    "data": {
                        "type": "mobile-money",
                        "accountName": self.name_of(phone),
                        "phone": phone,
                        "operator": body.get("operator"),
                        "country": body.get("country"),
                    },
                }
            )
        account = str(body.get("accountNumber") or "")
        return json_answer(
            {
                "status": True,
                "message": "",
                "data": {
                    "type": "bank-account",
                    "accountName": self.name_of(account),
                    "accountNumber": account,
                },
            }
        )

    def _banks_v1(self, request: Request) -> Response:
        return json_answer(
            {"status": True, "message": "", "data": [{"code": code, "name": name} for code, name in V1_BANKS]}
        )

    def _banks_v2(self, request: Request) -> Response:
        country = request.args.get("country", "")
        banks = [
            {"id": bank_id, "name": name, "country": country} for bank_id, name in V2_BANKS.get(country, [])
        ]
        return json_answer({"status": True, "message": "", "data": banks})

    # --- rendering --------------------------------------------------------------------------------------

    def _payout_data(self, payout: FakePayout, api: str, *, created: bool) -> dict[str, object]:
        if api == "v2":
            return self._v2_transfer(payout)
        pending = payout.status == Status.PENDING
        request_part = {
            "accountId": ACCOUNTS["NGN"],
            "recipientId": None,
            "accountNumber": payout.account,
            "bankCode": self.psp_institution,
            "amount": format(payout.amount, ".2f"),
            "narration": "Payout",
            "reference": payout.reference,
            "status": "queued" if pending and created else "created",
        }
        return {
            "request": request_part,
            "transaction": None if pending and created else self._v1_transaction(payout),
        }

    def _v1_transaction(self, payout: FakePayout) -> dict[str, object]:
        failed = payout.status == Status.FAILED
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, payout.reference)),
            "amount": format(payout.amount, ".2f"),
            "fee": "10.75",
            "narration": "Payout",
            "type": "debit",
            "initiatedAt": _AT,
            "completedAt": _AT if payout.status == Status.SUCCEEDED else None,
            "accountId": ACCOUNTS["NGN"],
            "details": {
                "accountName": self.account_name,
                "accountNumber": payout.account,
                "bank": {"code": self.psp_institution, "name": dict(V1_BANKS).get(self.psp_institution, "")},
            },
            "status": _WORDS.get(payout.status, str(payout.status)),
            "failedAt": _AT if failed else None,
            "reasonForFailure": "Transfer Not Successful" if failed else None,
            "clientReference": payout.reference,
            "transactionReference": "2405021015000123",
            "nipSessionId": payout.psp_id or None,
        }

    def _v2_transfer(self, payout: FakePayout) -> dict[str, object]:
        failed = payout.status == Status.FAILED
        kind, _, code = self.psp_institution.rpartition(":")
        if kind == "momo":
            credit_account: dict[str, object] = {
                "id": None,
                "type": "mobile-money",
                "accountName": self.account_name,
                "accountNumber": None,
                "bank": None,
                "phone": payout.account,
                "operator": code,
                "walletNumber": None,
                "tillNumber": None,
            }
        else:
            country = {"ZMW": "zm", "MWK": "mw"}[payout.currency]
            credit_account = {
                "id": None,
                "type": "bank-account",
                "accountName": self.account_name,
                "accountNumber": payout.account,
                "bank": {"id": code, "name": dict(V2_BANKS[country]).get(code, ""), "country": country},
                "phone": None,
                "operator": None,
                "walletNumber": None,
                "tillNumber": None,
            }
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, payout.reference)),
            "amount": format(payout.amount, ".2f"),
            "fee": "8.50",
            "currency": payout.currency,
            "narration": "Payout",
            "initiatedAt": _AT,
            "completedAt": _AT if payout.status == Status.SUCCEEDED else None,
            "accountId": ACCOUNTS[payout.currency],
            "creditAccount": credit_account,
            "status": _WORDS.get(payout.status, str(payout.status)),
            "reasonForFailure": "Not enough funds" if failed else None,
            "reference": payout.reference,
            "lencoReference": payout.psp_id or None,
            "extraData": {"nipSessionId": None},
            "source": "api",
        }


def _psp_id(api: str) -> str:
    """Lenco's own id for a finished transfer: the NIP session id (v1), its ``lencoReference`` (v2)."""
    return "0000142405021015" + uuid.uuid4().hex[:14] if api == "v1" else str(uuid.uuid4().int)[:9]


NO_REVERSAL = "Lenco documents no reversal of a successful transfer (lenco.md sections 9 and 16)"


class LencoNgnFake(LencoFake):
    """v1: a NUBAN at Access Bank, paid over NIP."""

    variant = "ngn"
    api = "v1"
    currency = "NGN"
    institution = "ABNGNGLA"
    psp_institution = "000014"
    account = "0123456789"
    account_name = "ADAEZE OKAFOR"
    amount = Decimal("15000")
    capabilities: ClassVar[dict[str, str]] = {"reversal": NO_REVERSAL}


class LencoMwkMomoFake(LencoFake):
    """v2: a TNM Mpamba wallet in Malawi (mobile money)."""

    variant = "mwk-momo"
    api = "v2"
    currency = "MWK"
    institution = "TNMPMWPC"
    psp_institution = "momo:tnm"
    account = "0881234567"
    account_name = "CHIKONDI PHIRI"
    amount = Decimal("25000")
    capabilities: ClassVar[dict[str, str]] = {
        "reversal": NO_REVERSAL,
        "name_resolution": (
            "Lenco resolves Zambian mobile-money numbers only, not Malawian ones (lenco.md section 6)"
        ),
    }


class LencoZmwBankFake(LencoFake):
    """v2: a bank account at Zanaco in Zambia (ZMW is not in the aggregator's list yet; Lenco pays it)."""

    variant = "zmw-bank"
    api = "v2"
    currency = "ZMW"
    institution = "ZNCOZMLU"
    psp_institution = "bank:" + V2_BANKS["zm"][0][0]
    account = "5012345678901"
    account_name = "MWILA BANDA"
    amount = Decimal("1250.50")
    capabilities: ClassVar[dict[str, str]] = {"reversal": NO_REVERSAL}
