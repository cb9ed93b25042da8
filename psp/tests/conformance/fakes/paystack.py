"""Paystack Transfers over real HTTP (protocol/paystack-transfers.md), for the conformance kit and the
Paystack tests.

What it speaks: ``POST /transferrecipient`` (the same ``RCP_…`` code for the same account, as Paystack
does), ``POST /transfer`` (idempotent by reference: a reference it holds is refused as "already used"),
``GET /transfer/verify/:reference``, ``GET /balance``, ``GET /bank``, ``GET /bank/resolve``, every call
behind ``Authorization: Bearer <secret key>``. Webhooks are ``{"event", "data"}`` signed with
``x-paystack-signature`` (HMAC-SHA512 of the body with the secret key).

Beyond the kit: ``otp_required`` makes new transfers wait in Paystack's ``otp`` status (transfer OTP on),
``set_wire_status`` puts any Paystack status on a payout (``abandoned``, ``received``...), and
``unresolvable`` lists accounts ``/bank/resolve`` does not find. Thread-safe: the end-to-end test serves it
from a threaded server to several node processes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import deque
from decimal import Decimal
from typing import Any, ClassVar

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from psp.tests.conformance.kit import Callback, FakePayout, PspFake, Refusal, Send, Status

SECRET_KEY = "sk_test_conformance_5f0c2e9a7b1d4c3e8f6a"
WRONG_KEY = "sk_test_attacker_000000000000000000000"
DUPLICATE_MESSAGE = "This reference has already been used on a prior transfer"
_JSON = "application/json"
_REFERENCE = re.compile(r"[a-z0-9_-]{16,100}")

# Paystack's wire status for each kit status.
_WIRE = {
    Status.PENDING: "pending",
    Status.SUCCEEDED: "success",
    Status.FAILED: "failed",
    Status.REVERSED: "reversed",
}
_EVENTS = {
    "success": "transfer.success",
    "failed": "transfer.failed",
    "reversed": "transfer.reversed",
}
# How Paystack words each refusal (its transfer error page); HTTP status, message, extra headers.
_REFUSALS: dict[Refusal, tuple[int, str, dict[str, str]]] = {
    Refusal.RECIPIENT_INVALID: (400, "Account closed", {}),
    Refusal.INSUFFICIENT_FUNDS: (400, "Your balance is not enough to fulfil this request", {}),
    Refusal.LIMIT: (400, "Transfer amount exceeds the maximum limit for this transfer", {}),
    Refusal.SERVICE_DOWN: (503, "Service temporarily unavailable. Please try again later", {}),
    Refusal.RATE_LIMITED: (429, "Too many requests", {"Retry-After": "1"}),
}
# GET /bank rows per currency: (name, code, type).
BANKS = {
    "NGN": [("Access Bank", "044", "nuban"), ("Kuda Bank", "50211", "nuban")],
    "GHS": [
        ("GCB Bank Limited", "GH040100", "ghipss"),
        ("ECOBANK GHANA", "GH130100", "ghipss"),
        ("MTN Mobile Money", "MTN", "mobile_money"),
        ("Vodafone Cash", "VOD", "mobile_money"),
    ],
    "KES": [("Kenya Commercial Bank", "01", "kepss")],
}


class PaystackFake(PspFake):
    """The ``paystack`` adapter's fake (registered in ``fakes.FAKES``)."""

    name: ClassVar[str] = "paystack"
    currency: ClassVar[str] = "NGN"
    institution: ClassVar[str] = "ABNGNGLA"
    account: ClassVar[str] = "0123456789"
    account_name: ClassVar[str] = "ADAEZE OKAFOR"
    amount: ClassVar[Decimal] = Decimal("15000")
    capabilities: ClassVar[dict[str, str]] = {}
    # Paystack documents the meaning, not the wording or the HTTP status (both UNCONFIRMED): the documented
    # text with a 400, and a bare 409.
    duplicate_forms: ClassVar[tuple[str, ...]] = ("prior_transfer_400", "conflict_409")
    secret_key: ClassVar[str] = SECRET_KEY
    timeout: ClassVar[Decimal] = Decimal("0.5")  # the adapter's read timeout; TIMEOUT_* answers come later

    def __init__(self, server: HTTPServer) -> None:
        super().__init__(server)
        self.wire_status: dict[str, str] = {}  # reference -> a Paystack status that overrides the kit's
        self.balances: dict[str, Decimal] = {
            "NGN": Decimal("50000000"),
            "GHS": Decimal("1000000"),
            "KES": Decimal("2000000"),
        }
        self.recipients: dict[str, dict[str, Any]] = {}  # RCP code -> the recipient
        self.recipient_creates = 0
        self.otp_required = False
        self.unresolvable: set[str] = set()
        self._script: deque[tuple[Send | Refusal, str]] = deque()
        self._lagged = 0
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()

    # --- wiring ------------------------------------------------------------------------------------------

    def node_settings(self) -> dict[str, Any]:
        return {
            "PAYSTACK_BASE_URL": self.base_url(),
            "PAYSTACK_SECRET_KEY": self.secret_key,
            "PAYSTACK_TIMEOUT_SECONDS": self.timeout,
        }

    def base_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def institution_mappings(self) -> list[tuple[str, str]]:
        return [(self.institution, "nuban:044")]

    def install(self) -> None:
        self.server.expect_request("/transferrecipient", method="POST").respond_with_handler(self._recipient)
        self.server.expect_request("/transfer", method="POST").respond_with_handler(self._transfer)
        self.server.expect_request(
            re.compile(r"^/transfer/verify/[^/]+$"), method="GET"
        ).respond_with_handler(self._verify)
        self.server.expect_request("/balance", method="GET").respond_with_handler(self._balance)
        self.server.expect_request("/bank/resolve", method="GET").respond_with_handler(self._resolve)
        self.server.expect_request("/bank", method="GET").respond_with_handler(self._banks)

    # --- scripting -----------------------------------------------------------------------------------------

    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        if duplicate_form and duplicate_form not in self.duplicate_forms:
            raise ValueError(f"unknown duplicate form {duplicate_form!r}")
        with self._lock:
            self._script.append((behaviour, duplicate_form))

    def lag_reads(self, count: int) -> None:
        with self._lock:
            self._lagged += count

    def finish(self, reference: str, status: Status) -> None:
        with self._lock:
            self.payouts[reference].status = status
            self.wire_status.pop(reference, None)

    def set_wire_status(self, reference: str, status: str) -> None:
        """Put a Paystack status the kit has no name for (``otp``, ``abandoned``, ``received``...)."""
        with self._lock:
            self.wire_status[reference] = status

    def held(self) -> list[FakePayout]:
        with self._lock:
            return list(self.payouts.values())

    def posts(self) -> int:
        return sum(1 for request, _ in self.server.log if self.is_create(request.path, request.method))

    def is_create(self, path: str, method: str) -> bool:
        return path == "/transfer" and method == "POST"

    def callback(self, reference: str, *, forged: bool = False) -> Callback:
        """The webhook for the payout's current status. Paystack sends none while a transfer is pending; for
        a pending payout this renders ``transfer.pending`` (not a Paystack event), which the adapter treats
        like any other ``transfer.*`` event: a hint to read the transfer."""
        with self._lock:
            data = self._transfer_json(self.payouts[reference])
        event = _EVENTS.get(str(data["status"]), f"transfer.{data['status']}")
        body = json.dumps({"event": event, "data": data}, separators=(",", ":")).encode()
        signature = sign(body, WRONG_KEY if forged else self.secret_key)
        return Callback(
            path="/webhooks/paystack",
            body=body,
            headers={"HTTP_X_PAYSTACK_SIGNATURE": signature, "CONTENT_TYPE": _JSON},
        )

    def set_balance(self, currency: str, amount: Decimal) -> None:
        with self._lock:
            self.balances[currency] = amount

    def name_of(self, account: str) -> str:
        return self.account_name

    # --- handlers ----------------------------------------------------------------------------------------

    def _authorised(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return _answer(401, {"status": False, "message": "Invalid key"})
        return None

    def _recipient(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        body = json.loads(request.get_data(), parse_float=Decimal)
        missing = [key for key in ("type", "name", "account_number", "bank_code") if not body.get(key)]
        if missing:
            return _answer(400, {"status": False, "message": f"{missing[0]} is required"})
        identity = "|".join(str(body.get(key)) for key in ("type", "bank_code", "account_number", "currency"))
        code = "RCP_" + hashlib.sha256(identity.encode()).hexdigest()[:14]
        with self._lock:
            self.recipient_creates += 1
            existing = code in self.recipients
            self.recipients[code] = {
                "recipient_code": code,
                "type": body["type"],
                "name": body["name"],
                "currency": body.get("currency", "NGN"),
                "details": {
                    "account_number": body["account_number"],
                    "account_name": body["name"],
                    "bank_code": body["bank_code"],
                    "bank_name": "",
                },
            }
        # "A duplicate account number will lead to the retrieval of the existing record."
        return _answer(
            200 if existing else 201,
            {
                "status": True,
                "message": "Transfer recipient created successfully",
                "data": self.recipients[code],
            },
        )

    def _transfer(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        body = json.loads(request.get_data(), parse_float=Decimal)
        reference, amount = body.get("reference"), body.get("amount")
        if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
            return _answer(
                400, {"status": False, "message": "Your reference contains illegal special characters"}
            )
        if not isinstance(amount, int) or amount <= 0:
            return _answer(400, {"status": False, "message": "Invalid amount"})
        with self._lock:
            recipient = self.recipients.get(str(body.get("recipient")))
            behaviour, duplicate_form = self._script.popleft() if self._script else (Send.PENDING, "")
            if duplicate_form == "conflict_409":
                return _answer(409, {"status": False, "message": "Conflict"})
            if duplicate_form or reference in self.payouts:
                return _answer(400, {"status": False, "message": DUPLICATE_MESSAGE})
            if recipient is None:
                return _answer(400, {"status": False, "message": "Invalid recipient"})
        if isinstance(behaviour, Refusal):
            status, message, headers = _REFUSALS[behaviour]
            return _answer(status, {"status": False, "message": message}, headers=headers)
        if behaviour is Send.TIMEOUT_BEFORE_COMMIT:
            time.sleep(float(self.timeout) * 3)
            return _answer(504, {"status": False, "message": "Gateway timeout"})
        payout = FakePayout(
            reference=reference,
            amount=Decimal(amount).scaleb(-2),
            currency=str(body.get("currency", "NGN")),
            account=str(recipient["details"]["account_number"]),
            status=Status.SUCCEEDED if behaviour is Send.SUCCEEDED else Status.PENDING,
            psp_id=f"TRF_{next(self._ids)}",
        )
        with self._lock:
            self.payouts[reference] = payout
            if self.otp_required and behaviour is not Send.SUCCEEDED:
                self.wire_status[reference] = "otp"
            data = self._transfer_json(payout)
        if behaviour is Send.TIMEOUT_AFTER_COMMIT:
            time.sleep(float(self.timeout) * 3)
        message = (
            "Transfer requires OTP to continue" if data["status"] == "otp" else "Transfer has been queued"
        )
        return _answer(200, {"status": True, "message": message, "data": data})

    def _verify(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        reference = request.path.rsplit("/", 1)[1]
        with self._lock:
            payout = self.payouts.get(reference)
            if self._lagged > 0:
                self._lagged -= 1
                payout = None
            data = self._transfer_json(payout) if payout is not None else None
        if data is None:
            return _answer(404, {"status": False, "message": "Transfer not found"})
        return _answer(200, {"status": True, "message": "Transfer retrieved", "data": data})

    def _balance(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        with self._lock:
            rows = [
                {"currency": currency, "balance": int(amount.scaleb(2))}
                for currency, amount in self.balances.items()
            ]
        return _answer(200, {"status": True, "message": "Balances retrieved", "data": rows})

    def _resolve(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        account = request.args.get("account_number", "")
        if not account or not request.args.get("bank_code") or account in self.unresolvable:
            return _answer(
                422,
                {
                    "status": False,
                    "message": "Could not resolve account name. Check parameters or try again.",
                },
            )
        data = {"account_number": account, "account_name": self.name_of(account), "bank_id": 9}
        return _answer(200, {"status": True, "message": "Account number resolved", "data": data})

    def _banks(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        currency = request.args.get("currency", "NGN")
        rows = [
            {
                "id": index,
                "name": name,
                "slug": name.lower().replace(" ", "-"),
                "code": code,
                "type": kind,
                "currency": currency,
                "country": {"NGN": "Nigeria", "GHS": "Ghana", "KES": "Kenya"}.get(currency, ""),
                "active": True,
                "is_deleted": False,
                "supports_transfer": True,
            }
            for index, (name, code, kind) in enumerate(BANKS.get(currency, []), start=1)
        ]
        return _answer(
            200,
            {
                "status": True,
                "message": "Banks retrieved",
                "data": rows,
                "meta": {"next": None, "perPage": 100},
            },
        )

    # --- rendering ---------------------------------------------------------------------------------------

    def _transfer_json(self, payout: FakePayout) -> dict[str, Any]:
        status = self.wire_status.get(payout.reference, _WIRE[payout.status])
        recipient = next(
            (r for r in self.recipients.values() if r["details"]["account_number"] == payout.account), {}
        )
        data: dict[str, Any] = {
            "amount": int(payout.amount.scaleb(2)),
            "currency": payout.currency,
            "domain": "test",
            "failures": None,
            "id": int(payout.psp_id.removeprefix("TRF_")),
            "reason": "Payout",
            "reference": payout.reference,
            "source": "balance",
            "status": status,
            "transfer_code": payout.psp_id,
            "titan_code": None,
            "transferred_at": None,
            "recipient": recipient,
            "session": {"provider": None, "id": None},
            "createdAt": "2026-12-03T10:00:00.000Z",
            "updatedAt": "2026-12-03T10:00:05.000Z",
        }
        if status in ("success", "reversed"):
            data["transferred_at"] = "2026-12-03T10:00:04.000Z"
            data["session"] = {"provider": "nip", "id": f"0900{payout.psp_id[4:]:0>26}"}
        if status == "failed":
            data["gateway_response"] = "Account closed"
        return data


def sign(body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def _answer(status: int, body: object, *, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=str), status=status, content_type=_JSON, headers=headers)
