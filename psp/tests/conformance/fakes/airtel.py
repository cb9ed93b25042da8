"""Airtel Money Open API (Disbursement) as a real local HTTP server, for the conformance kit and the
adapter's own tests.

It speaks protocol/airtel-money.md: an OAuth token (``expires_in`` "180"), ``X-Country``/``X-Currency`` on
every product call, disbursements with an RSA-encrypted PIN that it decrypts with its own key (served at
``GET /v1/rsa/encryption-keys``), optional message signing it verifies, failures as HTTP 200 with
``status.success: false``, duplicate ``transaction.id`` refusals, enquiry by our id, KYC, balance, and
callbacks with an HMAC ``hash``. Airtel documents no reversal and no institution list: both are declared.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from psp.tests.conformance.kit import Callback, FakePayout, PspFake, Refusal, Send, Status

CLIENT_ID = "airtel-test-client"
CLIENT_SECRET = "airtel-test-client-secret"
PIN = "4321"
CALLBACK_SECRET = "airtel-callback-private-key"
COUNTRY, CURRENCY = "UG", "UGX"
JSON = "application/json"
CREATE_PATH = re.compile(r"^/standard/v[123]/disbursements/?$")
ENQUIRY_PATH = re.compile(r"^/standard/v[12]/disbursements/(?P<id>[^/]+)$")
KYC_PATH = re.compile(r"^/standard/v1/users/(?P<msisdn>[0-9]+)$")
BALANCE_PATH = re.compile(r"^/standard/v[12]/users/balance$")
_STATUS_CODES = {Status.PENDING: "TIP", Status.SUCCEEDED: "TS", Status.FAILED: "TF"}


@cache
def private_key() -> rsa.RSAPrivateKey:
    """Airtel's key pair for the PIN and for x-key (made once per test run: key generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key_b64() -> str:
    der = (
        private_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode("ascii")


def rsa_decrypt(ciphertext_b64: str, padding_name: str) -> bytes:
    if padding_name == "pkcs1v15":
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    else:
        digest = hashes.SHA1() if padding_name == "oaep-sha1" else hashes.SHA256()  # noqa: S303
        mgf = hashes.SHA256() if padding_name == "oaep-sha256" else hashes.SHA1()  # noqa: S303
        scheme = padding.OAEP(mgf=padding.MGF1(algorithm=mgf), algorithm=digest, label=None)
    return private_key().decrypt(base64.b64decode(ciphertext_b64), scheme)


def callback_hash(message: bytes, secret: str = CALLBACK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def envelope(
    *,
    response_code: str,
    message: str,
    success: bool,
    code: str = "",
    transaction: Mapping[str, Any] | None = None,
    result_code: str = "",
) -> dict[str, Any]:
    """An Airtel answer body: ``data.transaction`` (when given) and the ``status`` block."""
    body: dict[str, Any] = {
        "status": {
            "code": code or ("200" if success else "400"),
            "message": message,
            "result_code": result_code or ("ESB000010" if success else "ESB000008"),
            "response_code": response_code,
            "success": success,
        }
    }
    if transaction is not None:
        body = {"data": {"transaction": dict(transaction)}, **body}
    return body


REFUSALS = {
    Refusal.RECIPIENT_INVALID: ("DP00900001012", "Mobile number entered is incorrect."),
    Refusal.INSUFFICIENT_FUNDS: ("DP00900001007", "Not enough funds in account to complete the transaction."),
    Refusal.LIMIT: ("DP00900001003", "Maximum transaction limit reached for the day."),
}
DUPLICATE_TEXTS = {
    "DP00900001011": "Transaction with similar information already exists in this system.",
    "DP00900001017": (
        "Duplicate Transaction Id. To know the status of the actual transaction, "
        "please do transaction enquiry."
    ),
    "ESB000041": "External Transaction ID already exists.",
}


class AirtelFake(PspFake):
    name = "airtel"
    currency = CURRENCY
    institution = "AIRTUGPC"
    account = "+256752604392"
    account_name = "Bob Mukasa"
    amount = Decimal("15000")
    capabilities: ClassVar[Mapping[str, str]] = {
        "reversal": "Airtel's disbursement API has no reversal status (TS, TF, TA, TIP, TE) and no reversal "
        "callback: a reversal reaches the node only through ops",
        "bank_list": "Airtel pays Airtel wallets only: there is no institution list",
    }
    duplicate_forms = tuple(DUPLICATE_TEXTS)

    def __init__(
        self,
        server: HTTPServer,
        *,
        version: str = "v2",
        signing: str = "off",
        pin_padding: str = "pkcs1v15",
        delay: float = 2.5,
    ) -> None:
        super().__init__(server)
        self.version = version
        self.signing = signing  # "off", or the padding the fake expects x-key in
        self.pin_padding = pin_padding
        self.delay = delay  # seconds a TIMEOUT_* answer takes (the client gives up after ~1 s)
        self.tokens: list[str] = []
        self.revoked: set[str] = set()
        self.balances: dict[str, Decimal] = {CURRENCY: Decimal("5000000")}
        self.names: dict[str, str] = {}
        self.barred: set[str] = set()
        self.sends: deque[tuple[Send | Refusal, str]] = deque()
        self.raw_sends: deque[tuple[int, Any]] = deque()  # exact answers (HTTP status, body) for unit tests
        self.raw_reads: deque[tuple[int, Any]] = deque()
        self.lagged_reads = 0
        self.problems: list[str] = []  # what the fake refused that a correct client never sends
        self._ids = itertools.count(1)

    # --- wiring ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def node_settings(self) -> dict[str, Any]:
        return {
            "AIRTEL_BASE_URL": {"*": self.base_url},
            "AIRTEL_CLIENT_ID": CLIENT_ID,
            "AIRTEL_CLIENT_SECRET": CLIENT_SECRET,
            "AIRTEL_COUNTRIES": [COUNTRY],
            "AIRTEL_PIN": {"*": PIN},
            "AIRTEL_PIN_ENCRYPTION": {"*": self.pin_padding},
            "AIRTEL_PIN_PUBLIC_KEY": {},  # fetched from GET /v1/rsa/encryption-keys
            "AIRTEL_SIGNING": {"*": self.signing},
            "AIRTEL_SIGNING_PUBLIC_KEY": {},
            "AIRTEL_DISBURSEMENT_VERSION": {"*": self.version},
            "AIRTEL_MSISDN_LENGTH": {"*": 9},
            "AIRTEL_MSISDN_LEADING_ZERO": [],
            "AIRTEL_AMOUNT_DECIMALS": {"*": 0},
            "AIRTEL_BALANCE": {"*": "v1"},
            "AIRTEL_CALLBACK_SECRET": CALLBACK_SECRET,
            "AIRTEL_TIMEOUT_SECONDS": Decimal("1"),
        }

    def node_env(self) -> dict[str, str]:
        """``node_settings`` as the environment of node processes (end-to-end tests)."""
        return {
            "AIRTEL_BASE_URL": self.base_url,
            "AIRTEL_CLIENT_ID": CLIENT_ID,
            "AIRTEL_CLIENT_SECRET": CLIENT_SECRET,
            "AIRTEL_COUNTRIES": COUNTRY,
            "AIRTEL_PIN": PIN,
            "AIRTEL_PIN_ENCRYPTION": self.pin_padding,
            "AIRTEL_SIGNING": self.signing,
            "AIRTEL_DISBURSEMENT_VERSION": self.version,
            "AIRTEL_CALLBACK_SECRET": CALLBACK_SECRET,
            "AIRTEL_TIMEOUT_SECONDS": "5",
        }

    def install(self) -> None:
        self.server.expect_request("/auth/oauth2/token", method="POST").respond_with_handler(self._token)
        self.server.expect_request("/v1/rsa/encryption-keys", method="GET").respond_with_handler(
            self._product(self._encryption_key)
        )
        self.server.expect_request(CREATE_PATH, method="POST").respond_with_handler(
            self._product(self._create)
        )
        self.server.expect_request(ENQUIRY_PATH, method="GET").respond_with_handler(
            self._product(self._enquiry)
        )
        self.server.expect_request(BALANCE_PATH, method="GET").respond_with_handler(
            self._product(self._balance)
        )
        self.server.expect_request(KYC_PATH, method="GET").respond_with_handler(self._product(self._kyc))

    # --- scripting ---------------------------------------------------------------------------------------

    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        if duplicate_form and duplicate_form not in DUPLICATE_TEXTS:
            raise ValueError(f"not an Airtel duplicate form: {duplicate_form!r}")
        self.sends.append((behaviour, duplicate_form))

    def lag_reads(self, count: int) -> None:
        self.lagged_reads += count

    def answer_next_send(self, body: Any, *, status: int = 200) -> None:
        """The next create call gets exactly this answer (and the fake holds nothing for it)."""
        self.raw_sends.append((status, body))

    def answer_next_read(self, body: Any, *, status: int = 200) -> None:
        self.raw_reads.append((status, body))

    def revoke_tokens(self) -> None:
        """Every token issued so far is now "invalid or expired"."""
        self.revoked.update(self.tokens)

    def finish(self, reference: str, status: Status) -> None:
        if status is Status.REVERSED:
            raise NotImplementedError(self.capabilities["reversal"])
        super().finish(reference, status)

    def is_create(self, path: str, method: str) -> bool:
        return method == "POST" and bool(CREATE_PATH.match(path))

    def callback(self, reference: str, *, forged: bool = False) -> Callback:
        payout = self.payouts[reference]
        transaction = {
            "id": reference,
            "message": f"Paid {payout.currency} {payout.amount} to {self.name_of(payout.account).upper()}, "
            f"Trans ID {payout.psp_id}.",
            "status_code": _STATUS_CODES[payout.status],
            "airtel_money_id": payout.psp_id,
        }
        signed = json.dumps(transaction, separators=(",", ":")).encode()
        digest = callback_hash(signed, "not-the-key" if forged else CALLBACK_SECRET)
        body = json.dumps({"transaction": transaction, "hash": digest}, separators=(",", ":")).encode()
        return Callback(path="/webhooks/airtel", body=body)

    def set_balance(self, currency: str, amount: Decimal) -> None:
        self.balances[currency] = amount

    def name_of(self, account: str) -> str:
        """Airtel's KYC answers the holder's names in capitals."""
        return self.names.get(account[-9:], self.account_name).upper()

    # --- the API -----------------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        if (
            body.get("client_id") != CLIENT_ID
            or body.get("client_secret") != CLIENT_SECRET
            or body.get("grant_type") != "client_credentials"
        ):
            return _json(
                {"error_description": "Invalid client authentication", "error": "invalid_client"}, 401
            )
        token = f"airtel-token-{len(self.tokens) + 1}"
        self.tokens.append(token)
        return _json({"access_token": token, "expires_in": "180", "token_type": "bearer"})

    def _product(self, handler: Any) -> Any:
        """Token and country checks every product call gets before its handler."""

        def checked(request: Request) -> Response:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.tokens or token in self.revoked:
                return _json(
                    {
                        "error_description": "The access token is invalid or has expired",
                        "error": "invalid_token",
                    },
                    401,
                )
            if not request.headers.get("X-Country"):
                self.problems.append("no X-Country")
                return _json({"status_message": "Partner  not found", "status_code": "ROUTER110"}, 400)
            if request.headers.get("X-Country") != COUNTRY:
                self.problems.append("X-Country")
                return _json(
                    envelope(response_code="DP00900001013", message="Invalid Country Code", success=False)
                )
            if request.headers.get("X-Currency") not in self.balances:
                self.problems.append("X-Currency")
                return _json(
                    envelope(response_code="ESB000008", message="Invalid/Missing Currency", success=False)
                )
            answer: Response = handler(request)
            return answer

        return checked

    def _encryption_key(self, request: Request) -> Response:
        return _json(
            {
                "data": {"key": public_key_b64(), "key_id": "1", "valid_upto": "2099-12-31 23:59:59"},
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "response_code": "DP02010001001",
                    "success": True,
                },
            }
        )

    def _create(self, request: Request) -> Response:
        raw = request.get_data()
        refusal = self._validate_create(request, raw)
        if refusal is not None:
            self.problems.append(refusal["status"]["message"])
            if self.sends:
                self.sends.popleft()
            return _json(refusal)
        if self.raw_sends:
            status, answer = self.raw_sends.popleft()
            return _json(answer, status)
        body = json.loads(raw, parse_float=Decimal)
        reference = str(body["transaction"]["id"])
        behaviour, duplicate_form = self.sends.popleft() if self.sends else (Send.PENDING, "")
        if duplicate_form or reference in self.payouts:
            form = duplicate_form or "DP00900001017"
            return _json(envelope(response_code=form, message=DUPLICATE_TEXTS[form], success=False))
        if isinstance(behaviour, Refusal):
            if behaviour is Refusal.SERVICE_DOWN:
                return _json(
                    envelope(
                        response_code="ESB000001", message="Service Unavailable", success=False, code="503"
                    ),
                    503,
                )
            if behaviour is Refusal.RATE_LIMITED:
                return Response(
                    json.dumps({"status": {"code": "429", "message": "Too Many Requests", "success": False}}),
                    status=429,
                    headers={"Retry-After": "1"},
                    content_type=JSON,
                )
            code, message = REFUSALS[behaviour]
            return _json(envelope(response_code=code, message=message, success=False))  # HTTP 200, code "400"
        if behaviour is Send.TIMEOUT_BEFORE_COMMIT:
            time.sleep(self.delay)
            return _json(envelope(response_code="ESB000001", message="Something went wrong", success=False))
        payout = FakePayout(
            reference=reference,
            amount=Decimal(str(body["transaction"]["amount"])),
            currency=request.headers["X-Currency"],
            account=str(body["payee"]["msisdn"]),
            status=Status.SUCCEEDED if behaviour is Send.SUCCEEDED else Status.PENDING,
            psp_id=f"MP{next(self._ids):06d}.1824.H0000",
        )
        self.payouts[reference] = payout
        if behaviour is Send.TIMEOUT_AFTER_COMMIT:
            time.sleep(self.delay)
        if payout.status is Status.SUCCEEDED:
            return _json(
                envelope(
                    response_code="DP00900001001",
                    message="Success",
                    success=True,
                    transaction=self._transaction(payout, with_reference=True),
                )
            )
        return _json(
            envelope(
                response_code="DP00900001006",
                message="Transaction is in process.",
                success=True,
                transaction=self._transaction(payout, with_reference=True),
            )
        )

    def _validate_create(self, request: Request, raw: bytes) -> dict[str, Any] | None:
        """Airtel's checks of a disbursement: the signature where signing is on, the encrypted PIN, the
        MSISDN (national, 9 digits), the id, the amount."""
        if self.signing != "off":
            try:
                key_and_iv = rsa_decrypt(request.headers["x-key"], self.signing).decode()
                key_b64, iv_b64 = key_and_iv.split(":")
                padder = symmetric_padding.PKCS7(128).padder()
                encryptor = Cipher(
                    algorithms.AES(base64.b64decode(key_b64)), modes.CBC(base64.b64decode(iv_b64))
                ).encryptor()
                expected = encryptor.update(padder.update(raw) + padder.finalize()) + encryptor.finalize()
                signed = base64.b64encode(expected).decode() == request.headers["x-signature"]
            except (KeyError, ValueError):
                signed = False
            if not signed:
                return envelope(
                    response_code="DP00900001016",
                    message="Forbidden: X-signature and payload did not match.",
                    success=False,
                    code="403",
                )
        try:
            body = json.loads(raw, parse_float=Decimal)
            pin = rsa_decrypt(body["pin"], self.pin_padding).decode()
        except (KeyError, ValueError, TypeError):
            pin = ""
        if pin != PIN:
            return envelope(response_code="DP00900001013", message="Incorrect Encrypted Pin", success=False)
        msisdn = str(body.get("payee", {}).get("msisdn", ""))
        if not re.fullmatch(r"[1-9][0-9]{8}", msisdn):
            return envelope(
                response_code="DP00900001013",
                message="Invalid Msisdn Length. Msisdn Length should be 9",
                success=False,
                result_code="521002",
            )
        transaction = body.get("transaction", {})
        amount = transaction.get("amount")
        if not transaction.get("id") or not isinstance(amount, int | Decimal) or amount <= 0:
            return envelope(response_code="DP00900001004", message="Invalid amount", success=False)
        if isinstance(amount, Decimal) and amount.as_tuple().exponent < -3:  # type: ignore[operator]
            return envelope(response_code="DP00900001004", message="Invalid amount", success=False)
        if self.version != "v1" and transaction.get("type") != "B2C":
            return envelope(response_code="ESB000008", message="Invalid transaction type", success=False)
        return None

    def _transaction(self, payout: FakePayout, *, with_reference: bool = False) -> dict[str, Any]:
        transaction: dict[str, Any] = {
            "airtel_money_id": payout.psp_id,
            "id": payout.reference,
            "status": _STATUS_CODES[payout.status],
        }
        if with_reference:
            transaction["reference_id"] = payout.psp_id
        else:
            transaction["message"] = (
                f"You have sent {payout.currency} {payout.amount} to {payout.account}. "
                f"Trans ID: {payout.psp_id}"
            )
        return transaction

    def _enquiry(self, request: Request) -> Response:
        reference = ENQUIRY_PATH.match(request.path)["id"]  # type: ignore[index]
        if request.path.startswith("/standard/v2/") and request.args.get("transactionType") != "B2C":
            self.problems.append("v2 enquiry without transactionType=B2C")
        if self.raw_reads:
            status, answer = self.raw_reads.popleft()
            return _json(answer, status)
        payout = self.payouts.get(reference)
        if payout is None or self.lagged_reads > 0:
            self.lagged_reads = max(0, self.lagged_reads - 1)
            return _json(
                envelope(response_code="DP00900001015", message="Transaction Not Found.", success=False)
            )
        if payout.status is Status.REVERSED:
            raise NotImplementedError(self.capabilities["reversal"])
        transaction = self._transaction(payout)
        if payout.status is Status.FAILED:
            transaction["message"] = "Transaction failed."
        return _json(
            envelope(response_code="DP00900001001", message="SUCCESS", success=True, transaction=transaction)
        )

    def _balance(self, request: Request) -> Response:
        currency = request.headers["X-Currency"]
        return _json(
            {
                "data": {
                    "balance": str(self.balances[currency]),
                    "currency": currency,
                    "account_status": "Active",
                },
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "response_code": "DP02100000001",
                    "success": True,
                },
            }
        )

    def _kyc(self, request: Request) -> Response:
        msisdn = KYC_PATH.match(request.path)["msisdn"]  # type: ignore[index]
        first, _, last = self.name_of(msisdn).partition(" ")
        return _json(
            {
                "data": {
                    "first_name": first,
                    "last_name": last,
                    "msisdn": msisdn,
                    "grade": "MCOM",
                    "is_barred": msisdn in self.barred,
                    "is_pin_set": True,
                    "registration": {"status": "MCOM"},
                },
                "status": {
                    "code": "200",
                    "message": "SUCCESS",
                    "response_code": "DP02200000001",
                    "result_code": "ESB000010",
                    "success": True,
                },
            }
        )


def _json(body: Any, status: int = 200) -> Response:
    """A JSON answer; bytes or text are sent as they are (an unreadable body, for tests)."""
    data = body if isinstance(body, bytes | str) else json.dumps(body, default=str)
    return Response(data, status=status, content_type=JSON)
