"""M-Pesa Daraja B2C, faked over real HTTP (protocol/mpesa-daraja.md): the token, the B2C payment request,
Transaction Status and Account Balance queries, and the Result callbacks Daraja sends.

Daraja answers nothing synchronously: a status or balance query is acknowledged, and its result is POSTed
later to the query's ``ResultURL``. The fake keeps every result it owes (``owed``) and delivers it:

* over HTTP at once, when ``deliver_to`` is set (a node running as real processes: the end-to-end test);
* otherwise when the test asks: ``callback(reference)`` returns the owed result of the newest status query
  about that payout (the payout's status at delivery time), or, when no query is owed, the payment's own
  Result callback (a hint the node confirms with a query); ``owed_callbacks()`` returns every owed
  result. The kit posts them with Django's test client.

So a conformance test settles an M-Pesa payout with: run the lane (its read sends a status query), post
``callback(reference)`` (the query's result), run the lane again (its read takes the recorded answer).

Scripted refusals in Daraja's words: an invalid recipient is ``400.002.02 Bad Request - Invalid PartyB``,
a limit ``400.002.02 Bad Request - Invalid Amount``, insufficient funds the acknowledgement's
``ResponseCode`` 1, a service fault ``500.003.1001``, throttling ``500.003.02 Spike Arrest Violation``
(HTTP 500: Daraja sends no 429 and no Retry-After). A repeated OriginatorConversationID is refused as
Daraja documents it: HTTP 500, ``500.002.1001`` "Duplicate OriginatorConversationID.".
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from psp.tests.conformance.kit import Callback, FakePayout, PspFake, Refusal, Send, Status

CONSUMER_KEY = "mpesa-fake-consumer-key"
CONSUMER_SECRET = "mpesa-fake-consumer-secret"
SHORTCODE = "600997"
INITIATOR = "testapi"
SECURITY_CREDENTIAL = base64.b64encode(b"not really encrypted: the fake does not decrypt").decode()
CALLBACK_TOKEN = "cb-3f6a1c9e0d8b4f27a5e1c6d9b0a7f3e2"
CALLBACK_BASE_URL = "http://testserver"
READ_TIMEOUT = Decimal("0.5")  # the node's MPESA_TIMEOUT_SECONDS against this fake
SLOW_ANSWER_SECONDS = 1.2  # a TIMEOUT_* answer comes after the client gave up
NOT_FOUND_CODE = 2032
NOT_FOUND_TEXT = "The transaction receipt number does not exist."
JSON = "application/json"

_PAYMENT_FIELDS = (
    "OriginatorConversationID",
    "InitiatorName",
    "SecurityCredential",
    "CommandID",
    "Amount",
    "PartyA",
    "PartyB",
    "Remarks",
    "QueueTimeOutURL",
    "ResultURL",
)
_STATUS_FIELDS = (
    "Initiator",
    "SecurityCredential",
    "CommandID",
    "OriginalConversationID",
    "PartyA",
    "IdentifierType",
    "ResultURL",
    "QueueTimeOutURL",
    "Remarks",
)
_BALANCE_FIELDS = (
    "Initiator",
    "SecurityCredential",
    "CommandID",
    "PartyA",
    "IdentifierType",
    "Remarks",
    "QueueTimeOutURL",
    "ResultURL",
)


@dataclass
class Owed:
    """A query result the fake owes the node."""

    kind: str  # "status" or "balance"
    url: str  # the query's ResultURL
    reference: str = ""  # the payout asked about (status)
    originator_id: str = ""  # the ids the acknowledgement gave the query
    conversation_id: str = ""
    lagged: bool = False  # answer "not found" whatever the fake holds (lag_reads)
    delivered: bool = False


def _json(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type=JSON)


def _gateway_error(status: int, code: str, message: str) -> Response:
    return _json({"requestId": "fake-1c5b-4ba8", "errorCode": code, "errorMessage": message}, status)


class MpesaFake(PspFake):
    name = "mpesa"
    currency = "KES"
    institution = "SAFAKEPC"
    account = "254708374149"
    account_name = "JOHN DOE"
    amount = Decimal("1500")
    capabilities: ClassVar[dict[str, str]] = {
        "signed_webhooks": "Daraja signs no callback: the node checks a secret token in the callback URL and "
        "confirms every callback with a Transaction Status query",
        "reversal": "Daraja announces no reversal of a B2C payment (a reversal is a Reversal API transaction "
        "the organisation itself starts)",
        "balance": "the balance arrives only as a callback to the node while the lane's read waits for "
        "it; an in-process test client cannot post it then (test_mpesa_client.py and the end-to-end "
        "test cover it)",
        "name_resolution": "B2C has no account-holder look-up before paying",
        "bank_list": "M-Pesa pays M-Pesa wallets only",
        "synchronous_success": "Daraja only acknowledges a payment; its outcome always comes by callback",
    }
    duplicate_forms = ("duplicate_originator_conversation_id",)

    def __init__(self, server: HTTPServer) -> None:
        super().__init__(server)
        self.script: list[tuple[Send | Refusal, str]] = []
        self.lagging = 0
        self.tokens: list[str] = []  # every token issued; only the last is valid (a new one kills the old)
        self.owed: list[Owed] = []
        self.result_urls: dict[str, tuple[str, str]] = {}  # reference -> (ResultURL, QueueTimeOutURL)
        self.balance = Decimal("228037.00")
        self.deliver_to: str | None = None  # the node's base URL: owed results are POSTed there at once
        self.deliveries: list[tuple[str, int]] = []  # (path, HTTP status) of each delivery over HTTP
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._started = 0  # requests whose handler began (the server logs a request when it returns)

    # --- wiring ------------------------------------------------------------------------------------------

    def node_settings(self) -> dict[str, Any]:
        return {
            "MPESA_BASE_URL": self.server.url_for("/").rstrip("/"),
            "MPESA_CONSUMER_KEY": CONSUMER_KEY,
            "MPESA_CONSUMER_SECRET": CONSUMER_SECRET,
            "MPESA_SHORTCODE": SHORTCODE,
            "MPESA_INITIATOR_NAME": INITIATOR,
            "MPESA_SECURITY_CREDENTIAL": SECURITY_CREDENTIAL,
            "MPESA_CALLBACK_BASE_URL": CALLBACK_BASE_URL,
            "MPESA_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "MPESA_TIMEOUT_SECONDS": READ_TIMEOUT,
            "MPESA_BALANCE_WAIT_SECONDS": Decimal("0.5"),
        }

    def node_env(self) -> dict[str, str]:
        """``node_settings`` as the environment of node processes (end-to-end tests), with a client timeout
        for a busy machine rather than for scripted lost answers."""
        env = {name: str(value) for name, value in self.node_settings().items()}
        return env | {"MPESA_TIMEOUT_SECONDS": "5", "MPESA_BALANCE_WAIT_SECONDS": "5"}

    def install(self) -> None:
        routes = (
            ("/oauth/v1/generate", "GET", self._token),
            ("/mpesa/b2c/v3/paymentrequest", "POST", self._payment),
            ("/mpesa/transactionstatus/v1/query", "POST", self._status),
            ("/mpesa/accountbalance/v1/query", "POST", self._balance),
        )
        for path, method, handler in routes:
            self.server.expect_request(path, method=method).respond_with_handler(self._counted(handler))

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every request the fake began answering has been answered (and logged): a slow
        answer to a client that gave up still counts in ``posts()`` once it is done."""
        deadline = time.monotonic() + timeout
        while len(self.server.log) < self._started:
            if time.monotonic() > deadline:
                raise AssertionError("a fake M-Pesa answer never finished")
            time.sleep(0.01)

    def _counted(self, handler: Any) -> Any:
        def counted(request: Request) -> Response:
            with self._lock:
                self._started += 1
            return handler(request)

        return counted

    # --- scripting -----------------------------------------------------------------------------------------

    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        if duplicate_form and duplicate_form not in self.duplicate_forms:
            raise ValueError(f"unknown duplicate form {duplicate_form!r}")
        self.script.append((behaviour, duplicate_form))

    def lag_reads(self, count: int) -> None:
        self.lagging += count

    def posts(self) -> int:
        self.settle()  # a payment answered slowly (a scripted timeout) is logged when its answer is done
        return super().posts()

    def is_create(self, path: str, method: str) -> bool:
        return method == "POST" and path == "/mpesa/b2c/v3/paymentrequest"

    def set_balance(self, currency: str, amount: Decimal) -> None:
        if currency != "KES":
            raise ValueError("M-Pesa holds KES only")
        self.balance = amount

    # --- callbacks -----------------------------------------------------------------------------------------

    def callback(self, reference: str, *, forged: bool = False) -> Callback:
        with self._lock:
            owed = next(
                (
                    o
                    for o in reversed(self.owed)
                    if o.kind == "status" and o.reference == reference and not o.delivered
                ),
                None,
            )
            if owed is not None:
                owed.delivered = True
        callback = self._render(owed) if owed is not None else self.payment_callback(reference)
        if not forged:
            return callback
        # What an attacker who does not know the URL's secret token sends: the same body, another token.
        segments = callback.path.split("/")  # "", "webhooks", "daraja", <token>, <kind>, <key>
        segments[3] = "f" * len(segments[3])
        return Callback(path="/".join(segments), body=callback.body)

    def query_answers(self) -> list[Callback]:
        return self.owed_callbacks()

    def owed_callbacks(self) -> list[Callback]:
        """Every query result owed and not delivered yet (marked delivered)."""
        with self._lock:
            owed = [o for o in self.owed if not o.delivered]
            for o in owed:
                o.delivered = True
        return [self._render(o) for o in owed]

    def payment_callback(self, reference: str, *, timeout: bool = False) -> Callback:
        """The payment's own Result callback (or its QueueTimeOut) for the payout's current status."""
        result_url, timeout_url = self.result_urls[reference]
        payout = self.payouts.get(reference)
        if timeout or payout is None or payout.status == Status.PENDING:
            body = {
                "Result": {
                    "ResultType": 0,
                    "ResultCode": 1,
                    "ResultDesc": "The service request has timed out.",
                    "OriginatorConversationID": reference,
                    "ConversationID": f"AG_FAKE_{reference[-8:]}",
                }
            }
            return Callback(path=urlsplit(timeout_url).path, body=json.dumps(body).encode())
        if payout.status == Status.SUCCEEDED:
            result: dict[str, Any] = {
                "ResultType": 0,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": reference,
                "ConversationID": f"AG_FAKE_{reference[-8:]}",
                "TransactionID": payout.psp_id,
                "ResultParameters": {
                    "ResultParameter": [
                        {"Key": "TransactionAmount", "Value": int(payout.amount)},
                        {"Key": "TransactionReceipt", "Value": payout.psp_id},
                        {
                            "Key": "ReceiverPartyPublicName",
                            "Value": f"{payout.account} - {self.account_name}",
                        },
                        {"Key": "TransactionCompletedDateTime", "Value": "06.07.2024 22:48:52"},
                        {"Key": "B2CUtilityAccountAvailableFunds", "Value": float(self.balance)},
                        {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                    ]
                },
            }
        else:
            result = {
                "ResultType": 0,
                "ResultCode": 2001,
                "ResultDesc": "The initiator information is invalid.",
                "OriginatorConversationID": reference,
                "ConversationID": f"AG_FAKE_{reference[-8:]}",
                "TransactionID": payout.psp_id or "SG722NMVXQ",
            }
        return Callback(path=urlsplit(result_url).path, body=json.dumps({"Result": result}).encode())

    def _render(self, owed: Owed) -> Callback:
        path = urlsplit(owed.url).path
        if owed.kind == "balance":
            return Callback(path=path, body=json.dumps(self._balance_result(owed)).encode())
        return Callback(path=path, body=json.dumps(self._status_result(owed)).encode())

    def _status_result(self, owed: Owed) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "ResultType": 0,
            "OriginatorConversationID": owed.originator_id,
            "ConversationID": owed.conversation_id,
            "TransactionID": f"OA{next(self._ids):08d}",
        }
        payout = self.payouts.get(owed.reference)
        if payout is None or owed.lagged:
            return {"Result": {**envelope, "ResultCode": NOT_FOUND_CODE, "ResultDesc": NOT_FOUND_TEXT}}
        status = {
            Status.PENDING: "Initiated",
            Status.SUCCEEDED: "Completed",
            Status.FAILED: "Declined",
            Status.REVERSED: "Completed",  # Daraja's status query shows no reversal
        }[payout.status]
        parameters = [
            {"Key": "DebitPartyName", "Value": f"{SHORTCODE} - Provision Node"},
            {"Key": "CreditPartyName", "Value": f"{payout.account} - {self.account_name}"},
            {"Key": "OriginatorConversationID", "Value": payout.reference},
            {"Key": "InitiatedTime", "Value": 20240706224852},
            {"Key": "DebitAccountType", "Value": "Utility Account"},
            {"Key": "DebitPartyCharges", "Value": "Fee For B2C Payment|KES|22.40"},
            {"Key": "TransactionReason"},
            {"Key": "ReasonType", "Value": "Business Payment to Customer via API"},
            {"Key": "TransactionStatus", "Value": status},
            {"Key": "FinalisedTime", "Value": 20240706224853},
            {"Key": "Amount", "Value": int(payout.amount)},
            {"Key": "ConversationID", "Value": f"AG_FAKE_{payout.reference[-8:]}"},
            {"Key": "ReceiptNo", "Value": payout.psp_id},
        ]
        return {
            "Result": {
                **envelope,
                "ResultCode": 0,
                "ResultDesc": "The service request has been accepted successfully.",
                "ResultParameters": {"ResultParameter": parameters},
                "ReferenceData": {"ReferenceItem": {"Key": "Occasion"}},
            }
        }

    def _balance_result(self, owed: Owed) -> dict[str, Any]:
        utility = format(self.balance, ".2f")
        accounts = (
            "Working Account|KES|700000.00|700000.00|0.00|0.00"
            "&Float Account|KES|0.00|0.00|0.00|0.00"
            f"&Utility Account|KES|{utility}|{utility}|0.00|0.00"
            "&Charges Paid Account|KES|-1540.00|-1540.00|0.00|0.00"
            "&Organization Settlement Account|KES|0.00|0.00|0.00|0.00"
        )
        return {
            "Result": {
                "ResultType": "0",
                "ResultCode": "0",
                "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": owed.originator_id,
                "ConversationID": owed.conversation_id,
                "TransactionID": f"OA{next(self._ids):08d}",
                "ResultParameters": {
                    "ResultParameter": [
                        {"Key": "AccountBalance", "Value": accounts},
                        {"Key": "BOCompletedTime", "Value": "20200109125710"},
                    ]
                },
            }
        }

    def _deliver_later(self, owed: Owed) -> None:
        """What Daraja does: POST the result to the ResultURL after the acknowledgement went out."""
        if self.deliver_to is None:
            return
        base = self.deliver_to.rstrip("/")

        def deliver() -> None:
            time.sleep(0.05)
            with self._lock:
                if owed.delivered:
                    return
                owed.delivered = True
            callback = self._render(owed)
            try:
                answer = requests.post(
                    base + callback.path, data=callback.body, headers={"Content-Type": JSON}, timeout=10
                )
                status = answer.status_code
            except requests.RequestException:
                status = 0  # lost, as Daraja's callbacks sometimes are: the node asks again
            with self._lock:
                self.deliveries.append((callback.path, status))

        threading.Thread(target=deliver, daemon=True).start()

    # --- the wire ------------------------------------------------------------------------------------------

    def _authorised(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        if not header.startswith("Bearer ") or not self.tokens or token != self.tokens[-1]:
            return _gateway_error(401, "401.002.01", f"Error Occurred - Invalid Access Token - {token}")
        if request.headers.get("Content-Type", "").split(";")[0] != JSON:
            return _gateway_error(400, "400.002.02", "Bad Request - Invalid InitiatorName")
        return None

    def _body(self, request: Request, fields: tuple[str, ...]) -> dict[str, Any] | Response:
        try:
            body = json.loads(request.data)
        except ValueError:
            return _gateway_error(400, "400.002.05", "Invalid Request Payload")
        missing = [name for name in fields if not body.get(name)]
        if missing:
            return _gateway_error(400, "400.002.02", f"Bad Request - Invalid {missing[0]}")
        return body

    def _acknowledgement(self, originator_id: str) -> tuple[Response, str]:
        conversation_id = f"AG_20240706_{next(self._ids):020x}"
        return (
            _json(
                {
                    "OriginatorConversationID": originator_id,
                    "ConversationID": conversation_id,
                    "ResponseCode": "0",
                    "ResponseDescription": "Accept the service request successfully.",
                }
            ),
            conversation_id,
        )

    def _token(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _gateway_error(400, "400.008.01", "Invalid Authentication passed")
        if request.args.get("grant_type") != "client_credentials":
            return _gateway_error(400, "400.008.02", "Invalid grant type passed")
        with self._lock:
            token = f"fake-token-{len(self.tokens) + 1}-{next(self._ids)}"
            self.tokens.append(token)
        return _json({"access_token": token, "expires_in": "3599"})

    def _payment(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        body = self._body(request, _PAYMENT_FIELDS)
        if isinstance(body, Response):
            return body
        if (
            body["InitiatorName"] != INITIATOR
            or body["PartyA"] != SHORTCODE
            or body["CommandID"] != "BusinessPayment"
        ):
            return _gateway_error(400, "400.002.02", "Bad Request - Invalid InitiatorName")
        reference = str(body["OriginatorConversationID"])
        amount = str(body["Amount"])
        if not amount.isdigit():
            return _gateway_error(400, "400.002.02", "Bad Request - Invalid Amount")
        with self._lock:
            behaviour, duplicate_form = self.script.pop(0) if self.script else (Send.PENDING, "")
            self.result_urls[reference] = (body["ResultURL"], body["QueueTimeOutURL"])
        if duplicate_form or (not isinstance(behaviour, Refusal) and reference in self.payouts):
            return _gateway_error(500, "500.002.1001", "Duplicate OriginatorConversationID.")
        if isinstance(behaviour, Refusal):
            return self._refusal(behaviour)
        if behaviour == Send.TIMEOUT_BEFORE_COMMIT:
            time.sleep(SLOW_ANSWER_SECONDS)
            return _gateway_error(500, "500.003.1001", "Internal Server Error")
        payout = FakePayout(
            reference=reference,
            amount=Decimal(amount),
            currency="KES",
            account=str(body["PartyB"]),
            psp_id=f"SK{next(self._ids):08d}",
        )
        if behaviour == Send.SUCCEEDED:
            payout.status = Status.SUCCEEDED
        with self._lock:
            self.payouts[reference] = payout
        answer, _conversation = self._acknowledgement(reference)
        if behaviour == Send.TIMEOUT_AFTER_COMMIT:
            time.sleep(SLOW_ANSWER_SECONDS)
        return answer

    def _refusal(self, refusal: Refusal) -> Response:
        if refusal == Refusal.RECIPIENT_INVALID:
            return _gateway_error(400, "400.002.02", "Bad Request - Invalid PartyB")
        if refusal == Refusal.LIMIT:
            return _gateway_error(400, "400.002.02", "Bad Request - Invalid Amount")
        if refusal == Refusal.INSUFFICIENT_FUNDS:
            return _json(
                {
                    "ConversationID": "",
                    "OriginatorConversationID": "",
                    "ResponseCode": "1",
                    "ResponseDescription": "The balance is insufficient for the transaction.",
                }
            )
        if refusal == Refusal.RATE_LIMITED:
            return _gateway_error(500, "500.003.02", "Spike Arrest Violation")
        return _gateway_error(500, "500.003.1001", "Internal Server Error")

    def _status(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        body = self._body(request, _STATUS_FIELDS)
        if isinstance(body, Response):
            return body
        if body["CommandID"] != "TransactionStatusQuery" or body["PartyA"] != SHORTCODE:
            return _gateway_error(400, "400.002.02", "Bad Request - Invalid CommandID")
        originator_id = f"16917-{next(self._ids)}-1"
        answer, conversation_id = self._acknowledgement(originator_id)
        with self._lock:
            lagged = self.lagging > 0
            self.lagging -= int(lagged)
            owed = Owed(
                kind="status",
                url=body["ResultURL"],
                reference=str(body["OriginalConversationID"]),
                originator_id=originator_id,
                conversation_id=conversation_id,
                lagged=lagged,
            )
            self.owed.append(owed)
        self._deliver_later(owed)
        return answer

    def _balance(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        body = self._body(request, _BALANCE_FIELDS)
        if isinstance(body, Response):
            return body
        if body["CommandID"] != "AccountBalance" or body["PartyA"] != SHORTCODE:
            return _gateway_error(400, "400.002.02", "Bad Request - Invalid CommandID")
        originator_id = f"16917-{next(self._ids)}-3"
        answer, conversation_id = self._acknowledgement(originator_id)
        owed = Owed(
            kind="balance",
            url=body["ResultURL"],
            originator_id=originator_id,
            conversation_id=conversation_id,
        )
        with self._lock:
            self.owed.append(owed)
        self._deliver_later(owed)
        return answer
