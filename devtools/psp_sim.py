"""A slow, Lenco-compatible PSP over real HTTP, for benchmarks and end-to-end runs of the Lenco adapter.

The node's in-database sandbox PSP answers at once; real PSPs take seconds per payout call. This simulator
serves the Lenco **v1** calls the node's ``psp.clients.lenco.LencoAdapter`` makes for NGN bank payouts
(protocol/lenco.md; answers shaped like psp/tests/fixtures/lenco/v1_*.json) from a stdlib
``ThreadingHTTPServer`` on 127.0.0.1 in a background thread, one thread per connection, so dozens of
payout calls are in flight at once:

    POST /access/v1/transfer                       queued transfer; the client ``reference`` is the
                                                   idempotency key (a reuse answers 400, errorCode "04")
    GET  /access/v1/transfer/by-reference/<ref>    the ``{request, transaction}`` pair; unknown: 400
                                                   "Transaction was not found"
    GET  /access/v1/accounts                       the one NGN account, with its balances
    GET  /access/v1/resolve?accountNumber=&bankCode=   the account holder's name (name checks)
    GET  /access/v1/banks                          a few NIP banks (``sync_banks``)
    GET  /access/v2/accounts                       no accounts: the adapter's balance reading also lists
                                                   v2 accounts (ZMW/MWK) and fails if that call fails

Every call needs ``Authorization: Bearer <api_key>`` (401, errorCode "09", answered at once, otherwise).

Behaviour:

* **Latency**, slept in the handler thread (so concurrent requests overlap): ``latency`` for the transfer
  POST, ``read_latency`` for every GET. The transfer is recorded when its POST *arrives*, before the sleep,
  as at a PSP that has taken the payout but not yet answered: a look-up during the POST (or after the
  client gave up) finds it, and a second POST with its reference is a duplicate.
* **Outcome.** A transfer is ``queued`` (the adapter's PENDING) until ``settle_after`` seconds after it
  arrived (0: final on the first read), then ``successful``, or ``failed`` when it is in the
  ``failure_rate`` share chosen from the SHA-256 of its reference (as the sandbox PSP does, so a given
  reference always ends the same way), or when the account could not cover amount + ``fee`` when it
  arrived ("Insufficient funds in your account").
* **Balance.** ``availableBalance`` falls by amount + fee when a transfer arrives (and not for one that
  will fail); ``currentBalance`` when it settles successfully.
* **Stats**: ``stats()`` counts posts, reads, duplicates, refusals and the most requests in flight at once,
  with per-kind timings (``requests()`` has every request).

Latency, settle time and failure rate are public attributes that may be changed while running.
No Django import: it runs in any process. Every wait is bounded.

Typical use::

    with PspSimulator(api_key="sim-key", latency=2.5) as sim:
        os.environ.update(sim.node_env())      # PSP=lenco, LENCO_BASE_URL=..., LENCO_API_KEY=...
        ...run the node and the load...
        print(sim.stats())

Or in the foreground: ``python -m devtools.psp_sim --port 9100 --latency 2.5``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import logging
import re
import signal
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_ACCOUNT_NAME",
    "PspSimStats",
    "PspSimulator",
    "RequestRecord",
    "RequestTimings",
    "SimTransfer",
]

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID: Final = "6f2c3a9e-1b7d-4c55-9e0a-3d8b2f41c7aa"  # the fixtures' account
#: The name resolve answers for every account not in ``account_names``: the aggregator simulator's
#: default recipient (devtools.aggregator_sim.DEFAULT_ACCOUNT_NAME), so a name check agrees with its orders.
DEFAULT_ACCOUNT_NAME: Final = "Adébáyọ̀ Ọlá"
BANKS: Final = {
    "000013": "GTBANK PLC",
    "000014": "ACCESS BANK",
    "000015": "ZENITH BANK",
    "000016": "FIRST BANK OF NIGERIA",
    "000004": "UNITED BANK FOR AFRICA",
}
FAILURE_MESSAGE: Final = "Transfer Not Successful"
INSUFFICIENT_FUNDS: Final = "Insufficient funds in your account"

# Request kinds (stats keys)
TRANSFER_CREATE: Final = "transfer_create"
TRANSFER_GET: Final = "transfer_get"
ACCOUNTS: Final = "accounts"
RESOLVE: Final = "resolve"
BANKS_LIST: Final = "banks"
UNKNOWN_PATH: Final = "unknown"
_READ_KINDS: Final = frozenset({TRANSFER_GET, ACCOUNTS, RESOLVE, BANKS_LIST})

_V1: Final = "/access/v1"
_V2: Final = "/access/v2"
_BY_REFERENCE: Final = re.compile(r"/access/v1/transfer/by-reference/([^/]+)")
_REFERENCE: Final = re.compile(r"[A-Za-z0-9._-]+")
_NUBAN: Final = re.compile(r"[0-9]{10}")
_BANK_CODE: Final = re.compile(r"[0-9]{6}")
_CENT: Final = Decimal("0.01")
_MAX_BODY: Final = 1024 * 1024
_MAX_RECORDS: Final = 200_000


@dataclass(frozen=True)
class SimTransfer:
    """One transfer as the simulator keeps it. ``outcome`` is where it ends: successful or failed."""

    reference: str
    id: str
    account_id: str
    amount: Decimal
    fee: Decimal
    narration: str
    account_number: str
    bank_code: str
    outcome: str
    reason_for_failure: str
    created_at: float  # wall clock
    settles_at: float  # wall clock; queued before, ``outcome`` from then on
    nip_session_id: str

    def status_at(self, now: float) -> str:
        """``queued`` before it settles, then its outcome."""
        return "queued" if now < self.settles_at else self.outcome


@dataclass(frozen=True)
class RequestRecord:
    """One answered (or dropped) request: its kind, HTTP status and how long it took."""

    kind: str
    method: str
    status: int | None  # None: dropped unanswered (the simulator stopped during its latency)
    started_at: float  # time.monotonic()
    elapsed_ms: float


@dataclass(frozen=True)
class RequestTimings:
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class PspSimStats:
    posts: int  # transfer POSTs with a valid token, duplicates and refusals included
    created: int  # transfers created
    duplicates: int  # POSTs answered "Duplicate client reference"
    reads: int  # GETs with a valid token (transfer look-ups, accounts, resolve, banks)
    transfer_reads: int  # GET /transfer/by-reference
    not_found: int  # look-ups of a reference the simulator does not have
    unauthorized: int  # requests refused with 401
    in_flight: int  # requests being served now
    max_in_flight: int  # the most requests served at once since the start (or the last reset)
    timings: dict[str, RequestTimings]  # by request kind

    def summary(self) -> str:
        """One line per kind, for a benchmark's report."""
        lines = [
            f"psp_sim: posts={self.posts} created={self.created} duplicates={self.duplicates} "
            f"reads={self.reads} transfer_reads={self.transfer_reads} not_found={self.not_found} "
            f"unauthorized={self.unauthorized} max_in_flight={self.max_in_flight}"
        ]
        for kind, t in sorted(self.timings.items()):
            lines.append(
                f"  {kind:<16} n={t.count:<6} mean={t.mean_ms:8.1f} ms  p50={t.p50_ms:8.1f}  "
                f"p95={t.p95_ms:8.1f}  max={t.max_ms:8.1f}"
            )
        return "\n".join(lines)


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]


def _money(value: Decimal) -> str:
    return format(value.quantize(_CENT), "f")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ok(data: Any, **extra: Any) -> _Answer:
    return _Answer(200, {"status": True, "message": "", "data": data, **extra})


def _error(status: int, message: str, code: str | None = None, **extra: Any) -> _Answer:
    body: dict[str, Any] = {"status": False, "message": message, "data": []}
    if code is not None:
        body["errorCode"] = code
    return _Answer(status, {**body, **extra})


def _draw(reference: str) -> float:
    """A number in [0, 1] fixed by the reference (the sandbox PSP's draw)."""
    return int(hashlib.sha256(reference.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _percentile(sorted_values: list[float], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return sorted_values[index]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # dozens of connections may arrive at once

    def __init__(self, address: tuple[str, int], simulator: PspSimulator) -> None:
        self.simulator = simulator
        self.closing = False
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """No further request on a kept-alive connection once stopped (see aggregator_sim._SimServer)."""
        self.closing = True
        with self._open_lock:
            open_now = list(self._open)
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the adapter's pooled connections are reused
    disable_nagle_algorithm = True
    server_version = "psp-sim"
    sys_version = ""
    timeout = 30

    def parse_request(self) -> bool:
        if cast(_Server, self.server).closing:
            self.close_connection = True
            return False
        return super().parse_request()

    def _dispatch(self) -> None:
        cast(_Server, self.server).simulator._serve(self)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: every request is in the simulator's records instead."""


class PspSimulator:
    """Lenco v1 for NGN bank payouts, slow on purpose. See the module docstring.

    ``api_key``: the bearer token the node must send. ``latency``: seconds before answering a transfer
    POST; ``read_latency``: before answering a GET. ``settle_after``: seconds from a transfer's arrival
    until it is final. ``failure_rate``: share (0..1) of references that fail. ``balance``: the NGN
    account's starting balance; ``fee``: charged per transfer. ``account_id``: the account's UUID (the
    node's LENCO_ACCOUNT_ID). ``account_names``: NUBAN -> name for resolve (others get
    DEFAULT_ACCOUNT_NAME). ``port`` 0 picks a free port; ``host`` must be a loopback address.
    """

    def __init__(
        self,
        *,
        api_key: str,
        latency: float = 2.5,
        read_latency: float = 0.05,
        port: int = 0,
        host: str = "127.0.0.1",
        settle_after: float = 0.0,
        failure_rate: float = 0.0,
        balance: Decimal | str = Decimal("50000000.00"),
        fee: Decimal | str = Decimal("0.00"),
        account_id: str = DEFAULT_ACCOUNT_ID,
        account_names: dict[str, str] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
            raise ValueError(f"the simulator listens on loopback only, not {host!r}")
        if not 0 <= failure_rate <= 1:
            raise ValueError("failure_rate must be between 0 and 1")
        self.api_key = api_key
        self.latency = float(latency)
        self.read_latency = float(read_latency)
        self.settle_after = float(settle_after)
        self.failure_rate = float(failure_rate)
        self.host = host
        self.account_id = account_id
        self.fee = Decimal(fee)
        self.account_names = dict(account_names or {})
        self._starting_balance = Decimal(balance)
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._transfers: dict[str, SimTransfer] = {}
        self._reserved = Decimal(0)  # amount + fee of every transfer that will succeed
        self._records: deque[RequestRecord] = deque(maxlen=_MAX_RECORDS)
        self._counts: dict[str, int] = {}
        self._in_flight = 0
        self._max_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------------------------- life cycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def v1_url(self) -> str:
        """The node's LENCO_BASE_URL (LencoConfig.base_url_v1)."""
        return self.base_url + _V1

    @property
    def v2_url(self) -> str:
        """The node's LENCO_V2_BASE_URL (LencoConfig.base_url_v2)."""
        return self.base_url + _V2

    def node_env(self) -> dict[str, str]:
        """The node's environment for paying through this simulator (LENCO_ACCOUNT_ID spares each worker
        process a GET /accounts before its first payout)."""
        return {
            "PSP": "lenco",
            "LENCO_BASE_URL": self.v1_url,
            "LENCO_V2_BASE_URL": self.v2_url,
            "LENCO_API_KEY": self.api_key,
            "LENCO_ACCOUNT_ID": self.account_id,
        }

    def start(self) -> PspSimulator:
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="psp-sim-http", daemon=True
        )
        self._thread.start()
        logger.info("psp_sim.started", extra={"base_url": self.base_url})
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening; requests still sleeping out their latency are dropped unanswered."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if thread is not None:
            thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> PspSimulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------- introspection

    def transfer(self, reference: str) -> SimTransfer | None:
        with self._lock:
            return self._transfers.get(reference)

    def transfers(self) -> list[SimTransfer]:
        with self._lock:
            return list(self._transfers.values())

    def balances(self) -> tuple[Decimal, Decimal]:
        """(available, current) as GET /accounts shows them now."""
        now = time.time()
        with self._lock:
            settled = sum(
                (t.amount + t.fee for t in self._transfers.values() if t.status_at(now) == "successful"),
                Decimal(0),
            )
            return self._starting_balance - self._reserved, self._starting_balance - settled

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def stats(self) -> PspSimStats:
        with self._lock:
            records = list(self._records)
            counts = dict(self._counts)
            in_flight, max_in_flight = self._in_flight, self._max_in_flight
        by_kind: dict[str, list[float]] = {}
        for record in records:
            if record.status is not None and record.status != 401:
                by_kind.setdefault(record.kind, []).append(record.elapsed_ms)
        timings = {}
        for kind, values in by_kind.items():
            values.sort()
            timings[kind] = RequestTimings(
                count=len(values),
                mean_ms=sum(values) / len(values),
                p50_ms=_percentile(values, 0.5),
                p95_ms=_percentile(values, 0.95),
                max_ms=values[-1],
            )
        return PspSimStats(
            posts=counts.get(TRANSFER_CREATE, 0),
            created=counts.get("created", 0),
            duplicates=counts.get("duplicate", 0),
            reads=sum(n for kind, n in counts.items() if kind in _READ_KINDS),
            transfer_reads=counts.get(TRANSFER_GET, 0),
            not_found=counts.get("not_found", 0),
            unauthorized=counts.get("unauthorized", 0),
            in_flight=in_flight,
            max_in_flight=max_in_flight,
            timings=timings,
        )

    def reset_stats(self) -> None:
        """Forget the counts and timings (not the transfers), e.g. after a warm-up."""
        with self._lock:
            self._records.clear()
            self._counts.clear()
            self._max_in_flight = self._in_flight

    # ---------------------------------------------------------------------------------------- serving

    def _serve(self, handler: _Handler) -> None:
        started = time.monotonic()
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        kind, status, recorded = UNKNOWN_PATH, None, False
        try:
            kind, answer, delay = self._handle(handler)
            if delay > 0 and self._stopping.wait(delay):
                handler.close_connection = True  # stopped while "working": no answer, like a dead PSP
                return
            status = answer.status
            payload = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
            # Recorded before the answer leaves: a client that reads stats() right after its call sees it.
            self._record(kind, handler.command, status, started)
            recorded = True
            try:
                handler.send_response(answer.status)
                handler.send_header("Content-Type", "application/json; charset=utf-8")
                handler.send_header("Content-Length", str(len(payload)))
                handler.send_header("X-Request-Id", uuid.uuid4().hex)
                handler.end_headers()
                handler.wfile.write(payload)
            except OSError:  # the client gave up (its read timeout) while we slept
                handler.close_connection = True
        finally:
            if not recorded:
                self._record(kind, handler.command, status, started)
            with self._lock:
                self._in_flight -= 1

    def _record(self, kind: str, method: str, status: int | None, started: float) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        with self._lock:
            self._records.append(RequestRecord(kind, method, status, started, elapsed_ms))

    def _count(self, key: str) -> None:
        """Caller holds ``_lock``."""
        self._counts[key] = self._counts.get(key, 0) + 1

    def _handle(self, handler: _Handler) -> tuple[str, _Answer, float]:
        """(kind, answer, seconds to wait before answering). State changes happen here, at arrival."""
        split = urlsplit(handler.path)
        path, method = split.path.rstrip("/"), handler.command
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = _MAX_BODY + 1
        if length > _MAX_BODY:
            handler.close_connection = True  # the unread rest of the body would be taken for a request
            return UNKNOWN_PATH, _error(400, "Request body too large", "01"), 0.0
        raw = handler.rfile.read(length) if length > 0 else b""
        kind = UNKNOWN_PATH
        match = _BY_REFERENCE.fullmatch(path)
        reference = unquote(match.group(1)) if match else ""
        if method == "POST" and path == f"{_V1}/transfer":
            kind = TRANSFER_CREATE
        elif method == "GET" and match:
            kind = TRANSFER_GET
        elif method == "GET" and path in (f"{_V1}/accounts", f"{_V2}/accounts"):
            kind = ACCOUNTS
        elif method == "GET" and path == f"{_V1}/resolve":
            kind = RESOLVE
        elif method == "GET" and path == f"{_V1}/banks":
            kind = BANKS_LIST
        presented = (handler.headers.get("Authorization") or "").encode("utf-8")
        if not hmac.compare_digest(presented, f"Bearer {self.api_key}".encode()):
            with self._lock:
                self._count("unauthorized")
            return kind, _error(401, "Unauthorized", "09"), 0.0
        if kind == UNKNOWN_PATH:
            return kind, _Answer(404, {"status": False, "message": "Not found", "data": None}), 0.0
        with self._lock:
            self._count(kind)
        if kind == TRANSFER_CREATE:
            return kind, self._create(raw), self.latency
        if kind == TRANSFER_GET:
            return kind, self._look_up(reference), self.read_latency
        if kind == ACCOUNTS:
            return kind, self._accounts(v1=path.startswith(_V1)), self.read_latency
        if kind == RESOLVE:
            query = {key: values[0] for key, values in parse_qs(split.query).items()}
            return kind, self._resolve(query), self.read_latency
        banks = [{"code": code, "name": name} for code, name in BANKS.items()]
        return kind, _ok(banks), self.read_latency

    def _create(self, raw: bytes) -> _Answer:
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "Invalid request body", "01")
        if not isinstance(body, dict):
            return _error(400, "Invalid request body", "01")
        reference = body.get("reference")
        if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
            return _error(400, "Invalid client reference", "04")
        try:
            amount = Decimal(str(body.get("amount")))
        except InvalidOperation:
            return _error(400, "amount must be a positive amount of NGN", "01")
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(_CENT):
            return _error(400, "amount must be a positive amount of NGN", "01")
        if body.get("accountId") != self.account_id:
            return _error(400, "Account was not found or api key does not have access to the account", "01")
        if body.get("recipientId"):
            return _error(400, "recipientId is not supported by the simulator", "01")
        account_number, bank_code = str(body.get("accountNumber") or ""), str(body.get("bankCode") or "")
        if not _NUBAN.fullmatch(account_number) or not _BANK_CODE.fullmatch(bank_code):
            return _error(400, "Invalid recipient account", "05")
        now = time.time()
        with self._lock:
            if reference in self._transfers:
                self._count("duplicate")
                detail = {"errorCode": "04", "errorMessage": "Duplicate client reference"}
                return _error(400, "Duplicate client reference", "04", errors={reference: detail})
            cost = amount + self.fee
            if _draw(reference) < self.failure_rate:
                outcome, reason = "failed", FAILURE_MESSAGE
            elif self._starting_balance - self._reserved < cost:
                outcome, reason = "failed", INSUFFICIENT_FUNDS
            else:
                outcome, reason = "successful", ""
                self._reserved += cost
            digest = hashlib.sha256(reference.encode()).hexdigest()
            transfer = SimTransfer(
                reference=reference,
                id=str(uuid.UUID(digest[:32])),
                account_id=self.account_id,
                amount=amount,
                fee=self.fee,
                narration=str(body.get("narration") or ""),
                account_number=account_number,
                bank_code=bank_code,
                outcome=outcome,
                reason_for_failure=reason,
                created_at=now,
                settles_at=now + self.settle_after,
                nip_session_id=bank_code + time.strftime("%y%m%d%H%M%S", time.gmtime(now)) + digest[:12],
            )
            self._transfers[reference] = transfer
            self._count("created")
        return _ok({"request": self._request_part(transfer, "queued"), "transaction": None})

    def _look_up(self, reference: str) -> _Answer:
        with self._lock:
            transfer = self._transfers.get(reference)
            if transfer is None:
                self._count("not_found")
        if transfer is None:
            return _error(400, "Transaction was not found")
        now = time.time()
        status = transfer.status_at(now)
        if status == "queued":
            return _ok({"request": self._request_part(transfer, "queued"), "transaction": None})
        finished = _iso(transfer.settles_at)
        transaction = {
            "id": transfer.id,
            "amount": _money(transfer.amount),
            "fee": _money(transfer.fee),
            "narration": transfer.narration,
            "type": "debit",
            "initiatedAt": _iso(transfer.created_at),
            "completedAt": finished if status == "successful" else None,
            "accountId": transfer.account_id,
            "details": {
                "accountName": self.account_names.get(transfer.account_number, DEFAULT_ACCOUNT_NAME),
                "accountNumber": transfer.account_number,
                "bank": {"code": transfer.bank_code, "name": BANKS.get(transfer.bank_code, "BANK")},
            },
            "status": status,
            "failedAt": finished if status == "failed" else None,
            "reasonForFailure": transfer.reason_for_failure or None,
            "clientReference": transfer.reference,
            "transactionReference": transfer.id.replace("-", "")[:16],
            "nipSessionId": transfer.nip_session_id if status == "successful" else None,
        }
        return _ok({"request": self._request_part(transfer, "created"), "transaction": transaction})

    @staticmethod
    def _request_part(transfer: SimTransfer, status: str) -> dict[str, Any]:
        return {
            "accountId": transfer.account_id,
            "recipientId": None,
            "accountNumber": transfer.account_number,
            "bankCode": transfer.bank_code,
            "amount": _money(transfer.amount),
            "narration": transfer.narration,
            "reference": transfer.reference,
            "status": status,
        }

    def _accounts(self, *, v1: bool) -> _Answer:
        if not v1:  # no ZMW/MWK accounts
            return _ok([], meta={"total": 0, "perPage": 100, "currentPage": 1, "pageCount": 0})
        available, current = self.balances()
        account = {
            "id": self.account_id,
            "name": "Provision Node Ltd",
            "currency": "NGN",
            "bankAccount": {
                "accountName": "Provision Node Ltd",
                "accountNumber": "1234567890",
                "bank": {"code": "999129", "name": "Lenco"},
            },
            "type": "Business",
            "status": "active",
            "availableBalance": _money(available),
            "currentBalance": _money(current),
            "createdAt": "2024-01-01T00:00:00.447Z",
        }
        return _ok([account])

    def _resolve(self, query: dict[str, str]) -> _Answer:
        account_number, bank_code = query.get("accountNumber", ""), query.get("bankCode", "")
        if not _NUBAN.fullmatch(account_number) or not _BANK_CODE.fullmatch(bank_code):
            return _error(400, "Account Details could not be verified")
        return _ok(
            {
                "accountName": self.account_names.get(account_number, DEFAULT_ACCOUNT_NAME),
                "accountNumber": account_number,
                "bank": {"code": bank_code, "name": BANKS.get(bank_code, "BANK")},
            }
        )


# ------------------------------------------------------------------------------------------- __main__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.psp_sim", description="A slow Lenco-compatible PSP on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", default="sim-lenco-key")
    parser.add_argument("--latency", type=float, default=2.5, help="seconds per transfer POST")
    parser.add_argument("--read-latency", type=float, default=0.05, help="seconds per GET")
    parser.add_argument("--settle-after", type=float, default=0.0, help="seconds until a transfer is final")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of references that fail")
    parser.add_argument("--balance", type=Decimal, default=Decimal("50000000.00"))
    args = parser.parse_args(argv)
    simulator = PspSimulator(
        api_key=args.api_key,
        latency=args.latency,
        read_latency=args.read_latency,
        port=args.port,
        settle_after=args.settle_after,
        failure_rate=args.failure_rate,
        balance=args.balance,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with simulator:
        lines = [f"psp_sim listening on {simulator.base_url}; point the node at it with:"]
        lines += [f"  {name}={value}" for name, value in simulator.node_env().items()]
        print("\n".join(lines), flush=True)
        while not stop.wait(1.0):
            pass
        print(simulator.stats().summary(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
