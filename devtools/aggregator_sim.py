"""A simulator of the Go aggregator (the NEDA-LABS "stablenode" fork) for demos, e2e tests and benchmarks.

It is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread) that
serves the provider API the way the fork does (shared/protocol/aggregator.md, A2-A6), and a client that
calls the node the way the fork does (A3: ``/new_order``, ``/tx_status``; B: the seed ``/orders``).

Contract points it reproduces on purpose (including the fork's defects, so the node is tested against
them):

* the HMAC middleware's checks in the fork's order and with its messages (A4.1), signature over the
  Go re-marshal of the body (``canonical_json``) or over the query parameters for GET;
* an order request is written with its expiry *before* the node is notified (A3.1, A5); accepting
  consumes it: a second accept, even after a lost 201, gets 404 (A4.3);
* fulfil looks fulfilments up by ``txId``; a ``success``/``failed`` with a never-seen ``txId`` answers
  500 with an empty body after recording it, and a retry succeeds (A4.5);
* wrongly typed JSON fields answer 500 with an empty body (A2, A4.5-A4.7);
* the ``/tx_status`` task (A3.2): ask about processing orders without a fulfilment and about pending
  fulfilments, apply the answers, and flag answers that would panic the fork's task.

No Django import at module level: the simulator runs in any process (tests run it with the Django
plugin off). Outbound calls use ``requests`` with explicit timeouts; every wait is bounded.

Typical use::

    with AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET, node_url="http://127.0.0.1:8000") as sim:
        offered = sim.offer("5000", currency="NGN", institution="ABNGNGLA")
        done = sim.wait_for_state(offered.id, "validated", timeout=60)
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import logging
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import requests

from provision import canonical_json, signing

__all__ = [
    "DEFAULT_ACCOUNT_NAME",
    "FLAVOURS",
    "TERMINAL_STATES",
    "AggregatorSimulator",
    "Fulfilment",
    "SimEvent",
    "SimOrder",
    "TxStatusResult",
    "Violation",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

FLAVOURS: Final = ("new_order", "seed")

# Simulator order states (the aggregator's own names are in SimOrder.aggregator_status).
OFFERED: Final = "offered"  # order request live, node notified (or being notified)
REFUSED: Final = "refused"  # the node did not answer /new_order with 2xx JSON: offer treated as refused
ACCEPTED: Final = "accepted"  # aggregator status "processing"
DECLINED: Final = "declined"
EXPIRED: Final = "expired"  # the order request expired without accept or decline
FULFILLED: Final = "fulfilled"
VALIDATED: Final = "validated"
CANCELLED: Final = "cancelled"
REASSIGNED: Final = "reassigned"  # taken back from this node (failed fulfilment, or fork deletion)

#: States after which nothing more is expected from the node for the order.
TERMINAL_STATES: Final = frozenset({REFUSED, DECLINED, EXPIRED, VALIDATED, CANCELLED, REASSIGNED})

DEFAULT_ACCOUNT_NAME: Final = "Adébáyọ̀ Ọlá"
DEFAULT_PROVIDER_ID: Final = "SIMPROV1"

_PROVIDER_PREFIX: Final = "/v1/provider"
_ORDER_ROUTE: Final = re.compile(r"/v1/provider/orders/([^/]+)/(accept|decline|fulfill|cancel)")
_BALANCE_AMOUNT: Final = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?")
_UUID_TEXT: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_HEX: Final = re.compile(r"[0-9a-fA-F]{32}")
_AUTH_EXPECTED: Final = "Expected: HMAC <public_key>:<signature>"
_ORDER_STATUS_FILTERS: Final = frozenset(
    {"pending", "processing", "fulfilled", "validated", "settled", "cancelled"}
)
_HTML_ESCAPES: Final = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
_MAX_BODY: Final = 8 * 1024 * 1024
_MAX_EVENTS: Final = 200_000
_GO_USER_AGENT: Final = "Go-http-client/1.1"


# ---------------------------------------------------------------------------------------------------------
# Records (snapshots handed out are deep copies; the live ones are only touched under the lock)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Fulfilment:
    """A fulfilment record, as the aggregator keeps it (looked up by ``tx_id`` across all orders)."""

    tx_id: str
    psp: str
    order_id: str
    validation_status: str = "pending"  # pending | success | failed
    validation_error: str = ""
    source: str = "fulfill"  # "fulfill" (the node's call) or "tx_status" (learnt from the task)
    created_at: float = field(default_factory=time.time)
    updated_mono: float = field(default_factory=time.monotonic)


@dataclass
class SimOrder:
    """One simulated order and everything the simulator saw about it."""

    id: str
    flavour: str
    amount: str  # fiat amount, decimal text (what /new_order and the accept answer carry)
    currency: str
    institution: str
    account_identifier: str
    account_name: str
    memo: str
    token: str
    token_amount: str
    rate: str
    network: str
    reference: str
    gateway_id: str
    block_number: int
    tx_hash: str
    state: str = OFFERED
    request_live: bool = True
    request_expires_mono: float = 0.0
    request_expires_at: float = 0.0  # wall clock (the seed body's expiresAt)
    offered_mono: float = field(default_factory=time.monotonic)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    updated_mono: float = field(default_factory=time.monotonic)
    offers: int = 1  # 1 + re-offers
    notify_ok: bool | None = None  # None while the notification is in flight (or was not sent)
    notify_status: int | None = None
    notify_error: str = ""
    notify_answer: Any = None
    notify_ms: float | None = None
    accepted_mono: float | None = None
    fulfilled_mono: float | None = None  # first time the order reached fulfilled or validated
    validated_mono: float | None = None
    closed_mono: float | None = None  # reached a terminal state
    accept_attempts: int = 0  # every authenticated accept call for this id
    accept_count: int = 0  # accepts answered (committed) with 201
    decline_count: int = 0
    fulfil_calls: int = 0
    success_fulfils: int = 0  # fulfil calls with validationStatus "success"
    cancel_calls: int = 0
    tx_status_calls: int = 0
    fulfilments: list[Fulfilment] = field(default_factory=list)
    cancel_reasons: list[str] = field(default_factory=list)
    reassign_reason: str = ""

    @property
    def aggregator_status(self) -> str:
        """The fork's order status name (GET /v1/provider/orders)."""
        return {
            OFFERED: "pending",
            REFUSED: "pending",
            EXPIRED: "pending",
            DECLINED: "pending",
            ACCEPTED: "processing",
            FULFILLED: "fulfilled",
            VALIDATED: "validated",
            CANCELLED: "cancelled",
            REASSIGNED: "pending",
        }[self.state]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def tx_ids(self) -> list[str]:
        return [f.tx_id for f in self.fulfilments]

    @property
    def outcome(self) -> str:
        """A one-word result: validated, declined, cancelled, expired, refused, failed or in_progress."""
        if self.state in (VALIDATED, DECLINED, CANCELLED, EXPIRED, REFUSED):
            return self.state
        if self.state == REASSIGNED or (self.state == FULFILLED and self._latest_failed()):
            return "failed"
        return "in_progress"

    def _latest_failed(self) -> bool:
        return bool(self.fulfilments) and self.fulfilments[-1].validation_status == "failed"

    @property
    def offer_to_accept_ms(self) -> float | None:
        return None if self.accepted_mono is None else (self.accepted_mono - self.offered_mono) * 1000

    @property
    def offer_to_fulfilled_ms(self) -> float | None:
        return None if self.fulfilled_mono is None else (self.fulfilled_mono - self.offered_mono) * 1000

    @property
    def offer_to_validated_ms(self) -> float | None:
        return None if self.validated_mono is None else (self.validated_mono - self.offered_mono) * 1000


@dataclass(frozen=True)
class SimEvent:
    """One HTTP exchange. ``direction`` "in" = node → simulator, "out" = simulator → node."""

    seq: int
    at: float
    direction: str
    method: str
    path: str
    query: dict[str, str]
    status: int | None  # None: no HTTP answer (fault injected, transport error)
    body: Any  # the request body, parsed as JSON when it is JSON (else text, or None when empty)
    response: Any  # the answer body, parsed likewise
    order_id: str | None = None
    fault: str | None = None  # "status", "timeout", "reset", "lost_accept_answer"
    error: str | None = None
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class Violation:
    """Something the node did that the contract forbids (or that would break the real aggregator)."""

    kind: str
    order_id: str | None
    detail: str
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TxStatusResult:
    """One /tx_status question and what the simulator did with the answer."""

    order_id: str
    case: int  # 1: no fulfilment yet; 2: pending fulfilment
    status_code: int | None
    data: Any
    applied: str  # validated, fulfilled_failed, nothing, deleted, error, violation
    error: str = ""


@dataclass
class _Fault:
    kind: str  # "status" | "timeout" | "reset"
    status: int
    hold_seconds: float
    path: str | None
    method: str | None


@dataclass
class _Call:
    method: str
    path: str
    raw_query: str
    headers: Message
    body: bytes


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    action: str = "answer"  # answer | reset | hold
    hold_seconds: float = 0.0
    fault: str | None = None
    order_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def _go_json(value: Any) -> bytes:
    """``json.Marshal`` of a Go struct: fields in declaration (insertion) order, HTML characters escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _HTML_ESCAPES:
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def _envelope(status: int, message: str, data: Any = None, *, order_id: str | None = None) -> _Reply:
    body = {"status": "success" if status < 400 else "error", "message": message, "data": data}
    return _Reply(status=status, body=_go_json(body), order_id=order_id)


def _crash(order_id: str | None = None) -> _Reply:
    """What gin's recovery writes after a handler panic: 500 with an empty body."""
    return _Reply(status=500, body=b"", content_type=None, order_id=order_id)


def _parse_uuid(text: str) -> str | None:
    """``uuid.Parse`` of Go's google/uuid: the 36-char form, with urn:uuid: prefix or braces, or 32 hex."""
    candidate = text
    if len(text) == 45 and text[:9].lower() == "urn:uuid:":
        candidate = text[9:]
    elif len(text) == 38 and text[0] == "{" and text[-1] == "}":
        candidate = text[1:-1]
    if _UUID_TEXT.fullmatch(candidate) or _UUID_HEX.fullmatch(candidate):
        return str(uuid.UUID(candidate))
    return None


def _decimal_text(value: Decimal) -> str:
    """Decimal text without exponent or trailing zeros, as shopspring/decimal's String() writes it."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def _json_number(value: Decimal) -> int | float:
    """A decimal as the JSON number the seed flavour sends (an int when integral)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _rfc3339(ts: float) -> str:
    """Go's time.Time JSON form (RFC 3339 with trailing-zero-free fractional seconds), in UTC."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def _parse_body_for_log(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _parse_node_answer(raw: bytes) -> tuple[bool, dict[str, Any]]:
    """The fork's ``ParseJSONResponse``: (ok, object). Empty body or a JSON array is silently ignored."""
    if not raw:
        return True, {}
    try:
        value = json.loads(raw)
    except ValueError:
        return False, {}
    if not isinstance(value, dict):
        return True, {}
    return True, value


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


# Go's default HTTP client keeps at most two idle connections per host (DefaultMaxIdleConnsPerHost).
_IDLE_CONNECTIONS_PER_HOST = 2


def _session() -> requests.Session:
    """A session for calls to the node, shared by all the simulator's threads as the aggregator's one
    ``http.Client`` is by its goroutines: kept-alive connections are reused (at most two idle ones per
    node, as Go keeps; a call while both are busy opens one more, closed afterwards), no retries, and
    loopback only, so no proxy environment (read anew on every call by a bare ``requests.post``)."""
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=_IDLE_CONNECTIONS_PER_HOST, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _SimServer(ThreadingHTTPServer):
    """Connections are kept alive between requests, as the Go aggregator's server does; the ones still
    open are closed when the simulator stops listening (``refuse_connections``, ``stop``)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: AggregatorSimulator) -> None:
        self.simulator = simulator
        self.closing = False  # set when it stops listening: no further request is answered
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
        """No further request on a kept-alive connection: an answer being written still goes out.

        A request read from now on is dropped unanswered (``closing``): on Linux a socket shut for reading
        still hands over data that arrives later, so the shutdown alone only wakes a handler waiting for
        its next request and would answer one sent just after."""
        self.closing = True
        with self._open_lock:
            open_now = list(self._open)
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Go sets TCP_NODELAY on every connection; without it, an answer's body written after its headers on
    # a kept-alive connection waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "aggregator-sim"
    sys_version = ""
    timeout = 30  # seconds a client may take to send its request

    def parse_request(self) -> bool:
        if cast(_SimServer, self.server).closing:
            self.close_connection = True
            return False  # closed without an answer, as a server that stopped listening
        return super().parse_request()

    def _dispatch(self) -> None:
        cast(_SimServer, self.server).simulator._dispatch(self)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: every exchange is in the simulator's event log instead."""


# ---------------------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------------------


class AggregatorSimulator:
    """The fork's provider API and its calls to the node, in one object. See the module docstring.

    Constructor arguments (all but the credentials have the fork's defaults):

    ``client_id``, ``secret``
        the provider's API key id (a UUID) and secret, shared with the node.
    ``node_url``
        the node's base URL (its "host identifier"); needed only to offer orders and poll /tx_status.
    ``port``, ``host``
        where to listen; port 0 picks a free port. Loopback addresses only.
    ``validity_seconds``
        ORDER_REQUEST_VALIDITY (30 s); a public attribute, may be changed at any time.
    ``currencies``
        the provider's currencies (balances, GET orders).
    ``tx_status_after``
        seconds a processing order without fulfilment waits before /tx_status case 1 (30 s).
    ``fulfilment_validity``
        ORDER_FULFILLMENT_VALIDITY: age of a pending fulfilment before /tx_status case 2 (60 s); orders
        processing for more than twice this while /tx_status fails are deleted (taken back).
    ``timestamp_age``
        HMAC_TIMESTAMP_AGE (300 s).
    ``timeout_hold_seconds``
        how long a ``fail_next(status="timeout")`` holds the connection (longer than the node's 10 s).
    ``notify_timeout``, ``tx_status_timeout``, ``connect_timeout``
        timeouts of the calls to the node (30 s, 10 s for case 1 / 30 s for case 2, 3 s to connect).
    ``rate``, ``crypto``, ``network``, ``provider_id``
        what GET /v1/provider/orders shows (token amount = fiat / rate, 4 decimals).
    ``control_api``
        serve ``POST /_sim/offer`` and ``GET /_sim/orders`` (no auth, loopback) for demos.
    ``answer_delay_seconds``
        every answer to the node waits this long first, as a distant aggregator's would (0).

    Public attributes: the settings above (``validity_seconds``, ``tx_status_after``, ... may be changed
    while running), ``base_url`` / ``provider_url`` / ``port`` once started, ``listening``.
    Introspection: ``order(id)``, ``orders()``, ``events()``, ``violations()``, ``balances()``,
    ``wait_for()``, ``wait_for_state()``, ``wait_for_event()``, ``all_settled()``.
    Faults: ``fail_next()``, ``lose_next_accept_answer()``, ``refuse_connections()``, ``expire()``,
    ``clear_faults()``.
    """

    def __init__(
        self,
        *,
        client_id: str,
        secret: str,
        node_url: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        validity_seconds: float = 30.0,
        currencies: Iterable[str] = ("NGN",),
        tx_status_after: float = 30.0,
        fulfilment_validity: float = 60.0,
        timestamp_age: float = 300.0,
        timeout_hold_seconds: float = 12.0,
        notify_timeout: float = 30.0,
        tx_status_timeout: float = 10.0,
        connect_timeout: float = 3.0,
        rate: str | Decimal = "1500",
        crypto: str = "USDT",
        network: str = "base-sepolia",
        provider_id: str = DEFAULT_PROVIDER_ID,
        control_api: bool = True,
        answer_delay_seconds: float = 0.0,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the simulator listens on loopback only, not {host!r}")
        parsed_id = _parse_uuid(client_id)
        if parsed_id is None:
            raise ValueError("client_id must be a UUID (the provider's API key id)")
        if not secret:
            raise ValueError("secret must not be empty")
        self.client_id = client_id
        self.secret = secret
        self.node_url = node_url.rstrip("/") if node_url else None
        self.host = host
        self.validity_seconds = float(validity_seconds)
        self.currencies = [c for c in currencies]
        self.tx_status_after = float(tx_status_after)
        self.fulfilment_validity = float(fulfilment_validity)
        self.timestamp_age = float(timestamp_age)
        self.timeout_hold_seconds = float(timeout_hold_seconds)
        # Every answer to the node waits this long first: a distant aggregator (round trip and processing).
        self.answer_delay_seconds = float(answer_delay_seconds)
        self.notify_timeout = float(notify_timeout)
        self._node_session = _session()
        self.tx_status_timeout = float(tx_status_timeout)
        self.connect_timeout = float(connect_timeout)
        self.rate = Decimal(str(rate))
        self.token = crypto
        self.network = network
        self.provider_id = provider_id
        self.control_api = control_api

        self._client_uuid = parsed_id
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._orders: dict[str, SimOrder] = {}
        self._live_ids: set[str] = set()  # orders whose request may still be live (expiry looks only here)
        self._fulfilments_by_tx: dict[str, Fulfilment] = {}
        self._events: deque[SimEvent] = deque(maxlen=_MAX_EVENTS)
        self._violations: list[Violation] = []
        self._balances: dict[str, dict[str, str]] = {}
        self._faults: list[_Fault] = []
        self._lose_accept: str | None = None
        self._seq = 0
        self._counter = 0
        self._server: _SimServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._listening = threading.Event()
        self._stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False

    # ----------------------------------------------------------------------------------- life cycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The aggregator base URL for the node (AGGREGATOR_BASE_URL), without /v1/provider."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def provider_url(self) -> str:
        return self.base_url + _PROVIDER_PREFIX

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def start(self, poll_interval: float | None = None) -> AggregatorSimulator:
        """Bind and serve in a background thread; with ``poll_interval`` also run the /tx_status task."""
        if self._started:
            raise RuntimeError("the simulator is already started")
        self._stop_event.clear()
        self._bind(self._requested_port)
        self._started = True
        if poll_interval is not None:
            if poll_interval <= 0:
                raise ValueError("poll_interval must be positive")
            self._spawn(self._poll_loop, poll_interval, name="aggregator-sim-poll")
        logger.info("aggregator_sim.started", extra={"base_url": self.base_url})
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and polling; wait (bounded) for the background threads."""
        if not self._started:
            return
        self._stop_event.set()
        self._unbind()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
            self._threads.clear()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._node_session.close()  # its kept-alive connections to the node
        self._started = False

    def __enter__(self) -> AggregatorSimulator:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _bind(self, port: int) -> None:
        server = _SimServer((self.host, port), self)
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="aggregator-sim-http",
            daemon=True,
        )
        with self._lock:
            self._server = server
            self._serve_thread = thread
        thread.start()
        self._listening.set()

    def _unbind(self) -> None:
        with self._lock:
            server, thread = self._server, self._serve_thread
            self._server = None
            self._serve_thread = None
        self._listening.clear()
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_open_connections()
        if thread is not None:
            thread.join(2.0)

    def _spawn(self, target: Callable[..., Any], *args: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    # ------------------------------------------------------------------------------- fault injection

    def fail_next(
        self,
        n: int = 1,
        status: int | str = 500,
        *,
        path: str | None = None,
        method: str | None = None,
        hold_seconds: float | None = None,
    ) -> None:
        """Make the next ``n`` provider-API requests fail before anything is done (not even auth).

        ``status``: an HTTP code (500 answers an empty body like a gin panic; other codes answer an
        error envelope, 429 with ``Retry-After: 1``), ``"timeout"`` (hold the connection for
        ``hold_seconds``, default ``timeout_hold_seconds``, then close it unanswered) or ``"reset"``
        (close the connection without answering). ``path`` (a substring, e.g. ``"/accept"``) and
        ``method`` restrict which requests the faults hit. The failed requests change nothing.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        if isinstance(status, str):
            if status not in ("timeout", "reset"):
                raise ValueError('status must be an HTTP code, "timeout" or "reset"')
            kind, code = status, 0
        else:
            if not 100 <= status <= 599:
                raise ValueError("status must be an HTTP status code")
            kind, code = "status", status
        hold = self.timeout_hold_seconds if hold_seconds is None else float(hold_seconds)
        with self._lock:
            for _ in range(n):
                self._faults.append(_Fault(kind, code, hold, path, method.upper() if method else None))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._lose_accept = None

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def lose_next_accept_answer(self, mode: int | str = 500) -> None:
        """Commit the next successful accept, then answer 500 (empty body) or, with ``"reset"``, drop it."""
        if mode not in (500, "reset"):
            raise ValueError('mode must be 500 or "reset"')
        with self._lock:
            self._lose_accept = "reset" if mode == "reset" else "500"

    def refuse_connections(self, seconds: float, *, wait: bool = False) -> None:
        """Stop listening (connections are refused), then listen again on the same port after ``seconds``.

        Returns at once (the listening socket is already closed); ``wait=True`` blocks until listening
        again. Requests already being served finish normally.
        """
        if not self._started or not self._listening.is_set():
            raise RuntimeError("the simulator is not listening")
        port = self.port
        self._unbind()
        relisten = self._spawn(self._relisten, port, float(seconds), name="aggregator-sim-relisten")
        if wait:
            relisten.join(seconds + 5.0)

    def wait_listening(self, timeout: float = 5.0) -> bool:
        return self._listening.wait(timeout)

    def _relisten(self, port: int, seconds: float) -> None:
        if self._stop_event.wait(seconds):
            return
        deadline = time.monotonic() + 5.0
        while not self._stop_event.is_set():
            try:
                self._bind(port)
            except OSError as exc:
                if time.monotonic() >= deadline:
                    logger.error("aggregator_sim.relisten_failed", extra={"port": port, "error": str(exc)})
                    return
                self._stop_event.wait(0.05)
                continue
            if self._stop_event.is_set():  # stop() ran while we were binding
                self._unbind()
            return

    # ------------------------------------------------------------------------------------ offering

    def offer(
        self,
        amount: str | int | Decimal = "5000",
        *,
        currency: str = "NGN",
        institution: str = "ABNGNGLA",
        flavour: str = "new_order",
        order_id: str | None = None,
        account_identifier: str | None = None,
        account_name: str = DEFAULT_ACCOUNT_NAME,
        memo: str | None = None,
        validity_seconds: float | None = None,
        notify: bool = True,
        block: bool = True,
    ) -> SimOrder:
        """Create an order request (expiry = now + validity) and then notify the node.

        ``flavour="new_order"``: ``POST {node_url}/new_order`` with ``{amount, currency, institution,
        orderId}`` (amount a string, rounded half-to-even to 0 decimals), ``X-Request-Signature``, no
        Content-Type. ``flavour="seed"``: ``POST {node_url}/orders`` with the full seed body (amounts as
        JSON numbers, recipient included, integer ``timestamp``) and ``Authorization: HMAC id:sig``.

        ``notify=False`` only creates the live request (tests of the provider API without a node).
        ``block=False`` notifies from a background thread. Returns a snapshot of the order.
        """
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}")
        if notify and not self.node_url:
            raise ValueError("node_url is required to notify the node")
        try:
            fiat = Decimal(str(amount).strip())
        except InvalidOperation as exc:
            raise ValueError(f"invalid amount {amount!r}") from exc
        if not fiat.is_finite() or fiat <= 0:
            raise ValueError(f"invalid amount {amount!r}")
        if flavour == "new_order":
            fiat = fiat.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        if order_id is None:
            oid = str(uuid.uuid4())
        else:
            parsed = _parse_uuid(order_id)
            if parsed is None:
                raise ValueError("order_id must be a UUID")
            oid = parsed
        validity = self.validity_seconds if validity_seconds is None else float(validity_seconds)
        token_amount = (fiat / self.rate).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
        with self._lock:
            if oid in self._orders:
                raise ValueError(f"order {oid} already exists; use reoffer()")
            self._counter += 1
            n = self._counter
            now_mono, now = time.monotonic(), time.time()
            order = SimOrder(
                id=oid,
                flavour=flavour,
                amount=_decimal_text(fiat),
                currency=currency,
                institution=institution,
                account_identifier=account_identifier or f"{n:010d}",
                account_name=account_name,
                memo=memo if memo is not None else f"Payment <invoice #{n}> & co",
                token=self.token,
                token_amount=_decimal_text(token_amount),
                rate=_decimal_text(self.rate),
                network=self.network,
                reference=f"SIM-{n:06d}",
                gateway_id="0x" + uuid.uuid4().hex + uuid.uuid4().hex,
                block_number=10_000_000 + n,
                tx_hash="0x" + uuid.uuid4().hex + uuid.uuid4().hex,
                request_expires_mono=now_mono + validity,
                request_expires_at=now + validity,
                offered_mono=now_mono,
                created_at=now,
                updated_at=now,
                updated_mono=now_mono,
            )
            self._orders[oid] = order
            self._live_ids.add(oid)
        if notify:
            if block:
                self._notify(oid)
            else:
                self._spawn(self._notify, oid, name=f"aggregator-sim-offer-{n}")
        return self.order(oid)

    def reoffer(
        self, order_id: str, *, validity_seconds: float | None = None, notify: bool = True, block: bool = True
    ) -> SimOrder:
        """Offer an existing order again (the fork reopens the request: a second accept would succeed)."""
        oid = _parse_uuid(order_id) or order_id
        validity = self.validity_seconds if validity_seconds is None else float(validity_seconds)
        with self._lock:
            order = self._orders[oid]
            now_mono = time.monotonic()
            order.request_live = True
            self._live_ids.add(oid)
            order.request_expires_mono = now_mono + validity
            order.request_expires_at = time.time() + validity
            order.offers += 1
            order.notify_ok = None
            if order.state in (EXPIRED, REFUSED, DECLINED):
                order.state = OFFERED
                order.closed_mono = None
            self._touch(order)
        if notify:
            if not self.node_url:
                raise ValueError("node_url is required to notify the node")
            if block:
                self._notify(oid)
            else:
                self._spawn(self._notify, oid, name="aggregator-sim-reoffer")
        return self.order(oid)

    def expire(self, order_id: str) -> None:
        """End an order request's accept window now (instead of waiting for it)."""
        with self._lock:
            order = self._orders[_parse_uuid(order_id) or order_id]
            order.request_expires_mono = time.monotonic()
            self._expire_locked()

    def _notify(self, oid: str) -> None:
        if not self.node_url:
            raise ValueError("node_url is required to notify the node")
        with self._lock:
            order = copy.deepcopy(self._orders[oid])
        headers: dict[str, str | None] = {
            "User-Agent": _GO_USER_AGENT,
            "Accept-Encoding": "gzip",
            "Accept": None,  # Go's client sends no Accept header
        }
        if order.flavour == "new_order":
            url = f"{self.node_url}/new_order"
            body = canonical_json.go_dumps(
                {
                    "amount": order.amount,
                    "currency": order.currency,
                    "institution": order.institution,
                    "orderId": oid,
                }
            )
            headers["X-Request-Signature"] = signing.sign(self.secret, body)
        else:
            url = f"{self.node_url}/orders"
            payload = {
                "orderId": oid,
                "amount": _json_number(Decimal(order.amount)),
                "currency": order.currency,
                "token": order.token,
                "tokenAmount": _json_number(Decimal(order.token_amount)),
                "network": order.network,
                "recipient": {
                    "institution": order.institution,
                    "accountIdentifier": order.account_identifier,
                    "accountName": order.account_name,
                    "memo": order.memo,
                },
                "reference": order.reference,
                "expiresAt": _rfc3339(int(order.request_expires_at)),
            }
            body, signature = signing.signed_body(self.secret, payload, timestamp=int(time.time()))
            headers["Authorization"] = f"HMAC {self.client_id}:{signature}"
            headers["Content-Type"] = "application/json"
        status, raw, error, elapsed = self._call_node(url, body, headers, self.notify_timeout, oid)
        parsed_ok, answer = _parse_node_answer(raw)
        ok = status is not None and 200 <= status < 300 and parsed_ok
        with self._lock:
            live = self._orders[oid]
            live.notify_ok = ok
            live.notify_status = status
            live.notify_error = error or ("" if parsed_ok else "answer is not JSON")
            live.notify_answer = answer if parsed_ok else raw.decode("utf-8", "replace")[:500]
            live.notify_ms = elapsed
            if not ok and live.state == OFFERED:
                # The fork rolls back, excludes the provider and reassigns the order; its order request
                # key stays until it expires (an accept would still succeed: flagged as a violation).
                live.state = REFUSED
                live.closed_mono = time.monotonic()
                self._touch(live)

    def _call_node(
        self, url: str, body: bytes, headers: Mapping[str, str | None], read_timeout: float, oid: str | None
    ) -> tuple[int | None, bytes, str | None, float]:
        """POST to the node (one attempt, like the fork). Returns (status, body, error, elapsed ms)."""
        started = time.monotonic()
        status: int | None = None
        raw = b""
        error: str | None = None
        try:
            response = self._node_session.post(
                url, data=body, headers=dict(headers), timeout=(self.connect_timeout, read_timeout)
            )
            status, raw = response.status_code, response.content
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = (time.monotonic() - started) * 1000
        split = urlsplit(url)
        self._record(
            direction="out",
            method="POST",
            path=split.path,
            query={},
            status=status,
            body=_parse_body_for_log(body),
            response=_parse_body_for_log(raw),
            order_id=oid,
            error=error,
            elapsed_ms=elapsed,
        )
        return status, raw, error, elapsed

    # ------------------------------------------------------------------------------ /tx_status task

    def poll_tx_status(self, *, force: bool = False) -> list[TxStatusResult]:
        """Run the fork's SyncLockOrderFulfillments task once (A3.2) and return what it asked and did.

        Case 1: an accepted order without fulfilment, unchanged for ``tx_status_after`` seconds.
        Case 2: a pending fulfilment unchanged for ``fulfilment_validity`` seconds (or on a cancelled
        order). ``force=True`` ignores the ages. Orders whose fulfilment failed are taken back
        (``reassigned``) at the start of the next run.
        """
        if not self.node_url:
            raise ValueError("node_url is required to poll /tx_status")
        with self._poll_lock:
            questions: list[tuple[str, int, dict[str, str]]] = []
            with self._lock:
                self._expire_locked()
                now = time.monotonic()
                for order in self._orders.values():
                    if order.state == FULFILLED and order._latest_failed():
                        self._set_state(order, REASSIGNED)
                        order.reassign_reason = "failed fulfilment: taken back and reassigned"
                        continue
                    pending = [f for f in order.fulfilments if f.validation_status == "pending"]
                    if order.state == ACCEPTED and not order.fulfilments:
                        if force or now - order.updated_mono >= self.tx_status_after:
                            questions.append((order.id, 1, {"currency": order.currency, "orderId": order.id}))
                    elif pending and order.state in (ACCEPTED, FULFILLED, CANCELLED):
                        latest = pending[-1]
                        due = now - latest.updated_mono >= self.fulfilment_validity
                        if force or due or order.state == CANCELLED:
                            questions.append(
                                (
                                    order.id,
                                    2,
                                    {
                                        "currency": order.currency,
                                        "orderId": order.id,
                                        "psp": latest.psp,
                                        "txId": latest.tx_id,
                                    },
                                )
                            )
            results = []
            for oid, case, payload in questions:
                if self._stop_event.is_set():
                    break
                results.append(self._ask_tx_status(oid, case, payload))
            return results

    def _poll_loop(self, interval: float) -> None:
        while not self._stop_event.wait(interval):
            try:
                self.poll_tx_status()
            except Exception:
                logger.exception("aggregator_sim.poll_failed")

    def _ask_tx_status(self, oid: str, case: int, payload: dict[str, str]) -> TxStatusResult:
        if not self.node_url:
            raise ValueError("node_url is required to poll /tx_status")
        body = canonical_json.go_dumps(payload)
        headers: dict[str, str | None] = {
            "User-Agent": _GO_USER_AGENT,
            "Accept-Encoding": "gzip",
            "Accept": None,
            "X-Request-Signature": signing.sign(self.secret, body),
        }
        timeout = self.tx_status_timeout if case == 1 else max(self.tx_status_timeout, 30.0)
        status, raw, error, _elapsed = self._call_node(
            f"{self.node_url}/tx_status", body, headers, timeout, oid
        )
        parsed_ok, answer = _parse_node_answer(raw)
        with self._lock:
            order = self._orders[oid]
            order.tx_status_calls += 1
            if status is None or status >= 400 or not parsed_ok:
                return self._tx_status_failed(order, case, status, answer, error or "answer is not JSON")
            data = answer.get("data")
            problem = self._tx_status_problem(data)
            if problem:
                self._violate("tx_status_malformed", oid, f"case {case}: {problem}; answer {answer!r}")
                return TxStatusResult(oid, case, status, data, "violation", problem)
            if not isinstance(data, dict):  # pragma: no cover (excluded by _tx_status_problem)
                raise TypeError("data must be an object")
            verdict = data["status"]
            if verdict == "success" and not data["txId"]:
                self._violate("tx_status_success_without_txid", oid, f"case {case}: {data!r}")
            if case == 1:
                if order.state != ACCEPTED or order.fulfilments:
                    return TxStatusResult(oid, case, status, data, "nothing", "order moved on meanwhile")
                if verdict in ("success", "failed"):
                    created = self._new_fulfilment(order, data["txId"], data["psp"], source="tx_status")
                    return self._apply_verdict(order, created, case, status, data)
                return TxStatusResult(oid, case, status, data, "nothing")
            tx_id = payload["txId"]
            fulfilment = self._fulfilments_by_tx.get(tx_id)
            if fulfilment is None or fulfilment.validation_status != "pending":
                return TxStatusResult(oid, case, status, data, "nothing", "fulfilment moved on meanwhile")
            if verdict in ("success", "failed") and data["txId"] and data["txId"] != tx_id:
                self._violate(
                    "tx_status_txid_mismatch", oid, f"asked about {tx_id!r}, answered {data['txId']!r}"
                )
            if verdict in ("success", "failed"):
                return self._apply_verdict(order, fulfilment, case, status, data)
            return TxStatusResult(oid, case, status, data, "nothing")

    @staticmethod
    def _tx_status_problem(data: Any) -> str:
        """Why the fork's task would panic on this ``data`` ("" when it would not)."""
        if not isinstance(data, dict):
            return "data is not an object"
        if not isinstance(data.get("status"), str):
            return "data.status is not a string"
        if not isinstance(data.get("psp"), str):
            return "data.psp is not a string"
        if not isinstance(data.get("txId"), str):
            return "data.txId is not a string"
        if data["status"] == "failed" and not isinstance(data.get("error"), str):
            return "data.error is not a string although status is failed"
        return ""

    def _apply_verdict(
        self, order: SimOrder, fulfilment: Fulfilment, case: int, status: int, data: dict[str, Any]
    ) -> TxStatusResult:
        fulfilment.updated_mono = time.monotonic()
        if data["status"] == "success":
            fulfilment.validation_status = "success"
            self._set_state(order, VALIDATED)
            return TxStatusResult(order.id, case, status, data, "validated")
        fulfilment.validation_status = "failed"
        fulfilment.validation_error = data["error"]
        self._set_state(order, FULFILLED)
        return TxStatusResult(order.id, case, status, data, "fulfilled_failed")

    def _tx_status_failed(
        self, order: SimOrder, case: int, status: int | None, answer: Any, error: str
    ) -> TxStatusResult:
        if status is not None and 400 <= status < 500:
            self._violate(
                "tx_status_error_for_accepted_order",
                order.id,
                f"case {case}: HTTP {status} for an order this node accepted; answer {answer!r}",
            )
        too_old = time.monotonic() - order.updated_mono > 2 * self.fulfilment_validity
        if order.state == ACCEPTED and too_old:
            self._set_state(order, REASSIGNED)
            order.reassign_reason = (
                "tx_status failing for > 2 x fulfilment validity: order deleted, re-indexed"
            )
            return TxStatusResult(order.id, case, status, answer, "deleted", error)
        return TxStatusResult(order.id, case, status, answer, "error", error)

    # ---------------------------------------------------------------------------------- introspection

    def order(self, order_id: str) -> SimOrder:
        """A snapshot (deep copy) of one order; KeyError if unknown."""
        with self._lock:
            self._expire_locked()
            return copy.deepcopy(self._orders[_parse_uuid(order_id) or order_id])

    def unsettled(self, order_ids: Iterable[str]) -> set[str]:
        """Which of these orders are not in a terminal state yet (one lock, no copies: for load tests)."""
        with self._lock:
            self._expire_locked()
            return {oid for oid in order_ids if not self._orders[_parse_uuid(oid) or oid].terminal}

    def orders(self) -> list[SimOrder]:
        """Snapshots of all orders, in offer order."""
        with self._lock:
            self._expire_locked()
            return [copy.deepcopy(o) for o in self._orders.values()]

    def events(
        self, *, path: str | None = None, direction: str | None = None, method: str | None = None
    ) -> list[SimEvent]:
        """The event log (oldest first), optionally filtered by path substring, direction, method."""
        with self._lock:
            events = list(self._events)
        return [
            e
            for e in events
            if (path is None or path in e.path)
            and (direction is None or e.direction == direction)
            and (method is None or e.method == method.upper())
        ]

    def violations(self, kind: str | None = None) -> list[Violation]:
        with self._lock:
            return [v for v in self._violations if kind is None or v.kind == kind]

    def balances(self) -> dict[str, dict[str, str]]:
        """The last balances the node reported, by currency."""
        with self._lock:
            return copy.deepcopy(self._balances)

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02, message: str = ""
    ) -> T:
        """Call ``predicate`` until it returns something truthy and return that; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(message or f"condition not met within {timeout} s")
            time.sleep(interval)

    def wait_for_state(self, order_id: str, *states: str, timeout: float = 5.0) -> SimOrder:
        """Wait until the order is in one of ``states`` (default: any terminal state); return a snapshot."""
        wanted = frozenset(states) if states else TERMINAL_STATES

        def check() -> SimOrder | None:
            snapshot = self.order(order_id)
            return snapshot if snapshot.state in wanted else None

        try:
            found = self.wait_for(check, timeout)
            if found is not None:
                return found
            raise TimeoutError
        except TimeoutError:
            state = self.order(order_id).state
            raise TimeoutError(
                f"order {order_id} is {state!r}, not in {sorted(wanted)} after {timeout} s"
            ) from None

    def wait_for_event(
        self,
        *,
        path: str,
        direction: str = "in",
        status: int | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[SimEvent]:
        """Wait until at least ``count`` matching events were logged; return them."""

        def check() -> list[SimEvent]:
            found = [
                e for e in self.events(path=path, direction=direction) if status is None or e.status == status
            ]
            return found if len(found) >= count else []

        return self.wait_for(
            check, timeout, message=f"fewer than {count} {direction} {path} events in {timeout} s"
        )

    def all_settled(self) -> bool:
        """True when every order is in a terminal state (and there is at least one order)."""
        with self._lock:
            self._expire_locked()
            return bool(self._orders) and all(o.terminal for o in self._orders.values())

    # ------------------------------------------------------------------------------- state helpers

    def _touch(self, order: SimOrder) -> None:
        order.updated_mono = time.monotonic()
        order.updated_at = time.time()

    def _set_state(self, order: SimOrder, state: str) -> None:
        now = time.monotonic()
        order.state = state
        if state == ACCEPTED and order.accepted_mono is None:
            order.accepted_mono = now
        if state in (FULFILLED, VALIDATED) and order.fulfilled_mono is None:
            order.fulfilled_mono = now
        if state == VALIDATED and order.validated_mono is None:
            order.validated_mono = now
        if state in TERMINAL_STATES:
            order.closed_mono = now
        self._touch(order)

    def _expire_locked(self) -> None:
        """Close the requests whose validity has passed: only the live ones are looked at (a long run keeps
        thousands of orders; this runs on every request and snapshot)."""
        now = time.monotonic()
        for oid in list(self._live_ids):
            order = self._orders[oid]
            if order.request_live and now < order.request_expires_mono:
                continue
            self._live_ids.discard(oid)
            if order.request_live:
                order.request_live = False
                if order.state == OFFERED:
                    self._set_state(order, EXPIRED)

    def _request_live(self, order: SimOrder) -> bool:
        return order.request_live and time.monotonic() < order.request_expires_mono

    def _violate(self, kind: str, order_id: str | None, detail: str) -> None:
        logger.warning(
            "aggregator_sim.violation", extra={"kind": kind, "order_id": order_id, "detail": detail}
        )
        self._violations.append(Violation(kind, order_id, detail))

    def _new_fulfilment(self, order: SimOrder, tx_id: str, psp: str, *, source: str) -> Fulfilment:
        others = {f.tx_id for f in order.fulfilments if f.tx_id != tx_id}
        if others:
            self._violate(
                "multiple_txids",
                order.id,
                f"new txId {tx_id!r} while the order already has {sorted(others)}: one txId per order",
            )
        fulfilment = Fulfilment(tx_id=tx_id, psp=psp, order_id=order.id, source=source)
        order.fulfilments.append(fulfilment)
        self._fulfilments_by_tx[tx_id] = fulfilment
        return fulfilment

    def _record(self, **fields: Any) -> None:
        with self._lock:
            self._seq += 1
            self._events.append(SimEvent(seq=self._seq, at=time.time(), **fields))

    # ------------------------------------------------------------------------------------- HTTP side

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        split = urlsplit(handler.path)
        call = _Call(
            method=handler.command, path=split.path, raw_query=split.query, headers=handler.headers, body=b""
        )
        reply: _Reply
        try:
            call.body = self._read_body(handler)
            reply = self._route(call)
        except Exception:
            logger.exception("aggregator_sim.handler_failed")
            reply = _crash()
        sent_status = reply.status if reply.action == "answer" else None
        order_match = _ORDER_ROUTE.fullmatch(call.path)
        try:
            query = {k: v[0] for k, v in canonical_json.go_parse_query(call.raw_query).items() if v}
        except canonical_json.CanonicalJsonError:
            query = {"": call.raw_query}
        # Logged before the answer goes out, so a client that got its answer finds the event.
        self._record(
            direction="in",
            method=call.method,
            path=call.path,
            query=query,
            status=sent_status,
            body=_parse_body_for_log(call.body),
            response=_parse_body_for_log(reply.body) if sent_status is not None else None,
            order_id=reply.order_id or (order_match.group(1) if order_match else None),
            fault=reply.fault,
            error=None,
            elapsed_ms=(time.monotonic() - started) * 1000,
        )
        if reply.action == "hold":
            self._stop_event.wait(reply.hold_seconds)
            self._drop(handler)
        elif reply.action == "reset":
            self._drop(handler)
        else:
            if self.answer_delay_seconds:
                self._stop_event.wait(self.answer_delay_seconds)
            self._answer(handler, reply)

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
        length_text = handler.headers.get("Content-Length")
        if handler.headers.get("Transfer-Encoding"):
            handler.close_connection = True  # a body this server does not read: the connection ends here
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            handler.close_connection = True
            return b""
        if length <= 0:
            return b""
        if length > _MAX_BODY:
            handler.close_connection = True  # the rest of the body is never read
        return handler.rfile.read(min(length, _MAX_BODY))

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
        try:
            handler.send_response(reply.status)
            if reply.content_type and reply.body:
                handler.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(reply.body)))
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            if reply.body and handler.command != "HEAD":
                handler.wfile.write(reply.body)
        except OSError:
            pass  # the client went away

    @staticmethod
    def _drop(handler: BaseHTTPRequestHandler) -> None:
        """Close the connection without an answer (RST: SO_LINGER 0)."""
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            handler.connection.close()

    def _route(self, call: _Call) -> _Reply:
        if call.path == "/health" and call.method == "GET":
            return _Reply(200, b'{"live":"ok"}')
        if self.control_api and call.path.startswith("/_sim/"):
            return self._control(call)
        order_match = _ORDER_ROUTE.fullmatch(call.path)
        route: Callable[[_Call, dict[str, Any], str], _Reply] | None = None
        raw_id = ""
        if call.method == "POST" and order_match:
            raw_id = order_match.group(1)
            route = {
                "accept": self._accept,
                "decline": self._decline,
                "fulfill": self._fulfill,
                "cancel": self._cancel,
            }[order_match.group(2)]
        elif call.method == "POST" and call.path == "/v1/provider/balances":
            route = self._update_balance
        elif call.method == "GET" and call.path == "/v1/provider/orders":
            route = self._list_orders
        elif call.method == "GET" and call.path == "/v1/provider/node-info":
            route = self._node_info
        if route is None:
            return _envelope(404, "Route Not Found")
        fault = self._take_fault(call)
        if fault is not None:
            return fault
        auth = self._authenticate(call)
        if isinstance(auth, _Reply):
            return auth
        return route(call, auth, raw_id)

    def _take_fault(self, call: _Call) -> _Reply | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if (fault.path is None or fault.path in call.path) and (
                    fault.method is None or fault.method == call.method
                ):
                    del self._faults[index]
                    break
            else:
                return None
        if fault.kind == "timeout":
            return _Reply(0, action="hold", hold_seconds=fault.hold_seconds, fault="timeout")
        if fault.kind == "reset":
            return _Reply(0, action="reset", fault="reset")
        if fault.status == 500:
            reply = _crash()
        else:
            reply = _envelope(fault.status, "Injected failure")
            if fault.status == 429:
                reply = _envelope(429, "Too many requests", {"retry_after": 1, "limit": 500})
                reply.headers["Retry-After"] = "1"
        reply.fault = "status"
        return reply

    def _authenticate(self, call: _Call) -> dict[str, Any] | _Reply:
        """The fork's HMAC middleware (A4.1), first failure wins. Returns the payload without timestamp."""
        header = call.headers.get("Authorization") or ""
        if not header:
            return _envelope(401, "Missing Authorization header")
        scheme, space, rest = header.partition(" ")
        if not space or scheme != "HMAC":
            return _envelope(401, "Invalid Authorization header", _AUTH_EXPECTED)
        if ":" not in rest or len(rest) < 4:
            return _envelope(401, "Invalid Authorization header format", _AUTH_EXPECTED)
        key_id, _, signature = rest.partition(":")
        if not key_id or not signature:
            return _envelope(401, "Invalid Authorization header format", _AUTH_EXPECTED)
        payload: dict[str, Any]
        try:
            if call.method in ("GET", "DELETE"):
                params = canonical_json.go_parse_query(call.raw_query)
                payload = {name: values[0] for name, values in params.items() if values}
            else:
                payload = canonical_json.go_loads(call.body)
        except canonical_json.CanonicalJsonError as exc:
            return _envelope(400, "Invalid payload format", str(exc))
        try:
            payload = canonical_json.normalize_timestamp(payload)
        except canonical_json.TimestampError:
            return _envelope(401, "Missing or invalid timestamp in payload")
        if time.time() - int(payload["timestamp"]) > self.timestamp_age:
            return _envelope(401, "Invalid timestamp")
        parsed_key = _parse_uuid(key_id)
        if parsed_key is None:
            return _envelope(400, "Invalid API key ID")
        if parsed_key != self._client_uuid:
            return _envelope(404, "API key not found")
        try:
            expected = signing.sign(self.secret, canonical_json.go_dumps(payload))
        except canonical_json.CanonicalJsonError:
            return _envelope(401, "Invalid HMAC signature")
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "surrogateescape")):
            return _envelope(401, "Invalid HMAC signature")
        payload.pop("timestamp", None)
        return payload

    # ---------------------------------------------------------------------------- provider routes

    def _accept(self, call: _Call, payload: dict[str, Any], raw_id: str) -> _Reply:
        oid = _parse_uuid(raw_id)
        if oid is None:
            return _envelope(400, "Invalid Order ID")
        with self._lock:
            self._expire_locked()
            order = self._orders.get(oid)
            if order is not None:
                order.accept_attempts += 1
            if order is None or not self._request_live(order):
                return _envelope(404, "Order request not found or is expired", order_id=oid)
            order.request_live = False  # accepting consumes the order request (fork)
            order.accept_count += 1
            if order.accept_count > 1:
                self._violate(
                    "duplicate_accept", oid, f"accept #{order.accept_count} answered 201 after a re-offer"
                )
            if order.notify_ok is False:
                self._violate(
                    "accept_after_failed_notify",
                    oid,
                    "the node accepted an order whose /new_order it did not take: "
                    f"{order.notify_status or order.notify_error}",
                )
            if order.state in (OFFERED, REFUSED):
                self._set_state(order, ACCEPTED)
            else:
                self._touch(order)
            data = {
                "id": oid,
                "amount": order.amount,
                "institution": order.institution,
                "accountIdentifier": order.account_identifier,
                "accountName": order.account_name,
                "memo": order.memo,
                "metadata": None,
            }
            lose, self._lose_accept = self._lose_accept, None
        reply = _envelope(201, "Order request accepted successfully", data, order_id=oid)
        if lose == "reset":
            return _Reply(0, action="reset", fault="lost_accept_answer", order_id=oid)
        if lose == "500":
            crashed = _crash(oid)
            crashed.fault = "lost_accept_answer"
            return crashed
        return reply

    def _decline(self, call: _Call, payload: dict[str, Any], raw_id: str) -> _Reply:
        oid = _parse_uuid(raw_id)
        if oid is None:
            return _envelope(400, "Invalid Order ID")
        with self._lock:
            self._expire_locked()
            order = self._orders.get(oid)
            if order is None or not self._request_live(order):
                return _envelope(404, "Order request not found or is expired", order_id=oid)
            order.request_live = False
            order.decline_count += 1
            if order.state in (OFFERED, REFUSED):
                self._set_state(order, DECLINED)
            else:
                self._touch(order)
        return _envelope(200, "Order request declined successfully", order_id=oid)

    def _fulfill(self, call: _Call, payload: dict[str, Any], raw_id: str) -> _Reply:
        for key in ("psp", "txId", "validationStatus", "validationError"):
            value = payload.get(key)
            if value is not None and not isinstance(value, str):
                return _crash()  # a wrongly typed field panics the handler (A4.5)
        errors = [
            {"field": name, "message": "This field is required"}
            for key, name in (("psp", "PSP"), ("txId", "TxID"))
            if not payload.get(key)
        ]
        if errors:
            return _envelope(400, "Failed to validate payload", errors)
        oid = _parse_uuid(raw_id)
        if oid is None:
            return _envelope(400, "Invalid Order ID")
        tx_id, psp = str(payload["txId"]), str(payload["psp"])
        verdict = str(payload.get("validationStatus") or "pending")
        with self._lock:
            self._expire_locked()
            order = self._orders.get(oid)
            if order is None:
                return _crash(oid)  # unknown order id: 500 in the fork
            order.fulfil_calls += 1
            if verdict == "success":
                order.success_fulfils += 1
            if order.accepted_mono is None:
                self._violate(
                    "fulfil_unaccepted_order", oid, f"fulfil {verdict!r} for an order never accepted"
                )
            fulfilment = self._fulfilments_by_tx.get(tx_id)
            created = fulfilment is None
            if fulfilment is None:
                fulfilment = self._new_fulfilment(order, tx_id, psp, source="fulfill")
            elif fulfilment.order_id != oid:
                self._violate(
                    "txid_reused_across_orders", oid, f"txId {tx_id!r} belongs to {fulfilment.order_id}"
                )
            if verdict == "success":
                if created:
                    return _crash(oid)  # the fork's nil-pointer crash; the fulfilment stays pending
                if order.state == VALIDATED:
                    return _envelope(200, "Order already validated", order_id=oid)
                fulfilment.validation_status = "success"
                fulfilment.updated_mono = time.monotonic()
                self._set_state(order, VALIDATED)
            elif verdict == "failed":
                if order.state == VALIDATED:
                    self._violate(
                        "failed_after_validated", oid, f"fulfil failed for a validated order ({tx_id!r})"
                    )
                fulfilment.validation_status = "failed"
                fulfilment.validation_error = str(payload.get("validationError") or "")
                fulfilment.updated_mono = time.monotonic()
                self._set_state(order, FULFILLED)
                if created:
                    return _crash(oid)  # committed, then the same crash
            elif order.state in (ACCEPTED, FULFILLED):
                self._set_state(order, FULFILLED)
        return _envelope(200, "Order fulfilled successfully", order_id=oid)

    def _cancel(self, call: _Call, payload: dict[str, Any], raw_id: str) -> _Reply:
        reason = payload.get("reason")
        if reason is not None and not isinstance(reason, str):
            return _crash()
        if not reason:
            return _envelope(
                400, "Failed to validate payload", [{"field": "Reason", "message": "This field is required"}]
            )
        oid = _parse_uuid(raw_id)
        if oid is None:
            return _envelope(400, "Invalid Order ID")
        with self._lock:
            order = self._orders.get(oid)
            if order is None or order.accepted_mono is None or order.state == REASSIGNED:
                return _envelope(404, "Could not find payment order", order_id=oid)
            order.cancel_calls += 1
            order.cancel_reasons.append(reason)
            paid = order.state == VALIDATED or any(
                f.validation_status == "success" for f in order.fulfilments
            )
            if paid:
                self._violate(
                    "cancel_after_payment", oid, f"cancel ({reason!r}) of an order with a successful payout"
                )
            self._set_state(order, CANCELLED)
        return _envelope(200, "Order cancelled successfully", order_id=oid)

    def _update_balance(self, call: _Call, payload: dict[str, Any], raw_id: str) -> _Reply:
        fields = (
            ("currency", "Currency"),
            ("availableBalance", "AvailableBalance"),
            ("totalBalance", "TotalBalance"),
            ("reservedBalance", "ReservedBalance"),
        )
        for key, _name in fields:
            value = payload.get(key)
            if value is not None and not isinstance(value, str):
                return _crash()  # numbers instead of strings (A4.7)
        errors: list[dict[str, str]] = []
        for key, name in fields:
            value = str(payload.get(key) or "")
            message = ""
            if not value:
                message = "This field is required"
            elif key == "currency" and len(value) < 3:
                message = "Should be at least 3 characters"
            elif key == "currency" and len(value) > 7:
                message = "Should be at most 7 characters"
            elif key != "currency" and not _BALANCE_AMOUNT.fullmatch(value):
                message = "Unknown error"
            if message:
                errors.append({"field": name, "message": message})
        if errors:
            return _envelope(400, "Failed to validate payload", errors)
        currency = str(payload["currency"])
        if currency not in self.currencies:
            return _envelope(500, "Failed to update balance")
        with self._lock:
            self._balances[currency] = {key: str(payload[key]) for key, _ in fields[1:]}
        return _envelope(200, "Balance updated successfully")

    def _list_orders(self, call: _Call, payload: dict[str, Any], raw_id: str) -> _Reply:
        currency = str(payload.get("currency") or "")
        if not currency:
            return _envelope(400, "Currency is required")
        if currency not in self.currencies:
            return _envelope(400, "Currency not found")
        status_filter = str(payload.get("status") or "")
        page = self._positive_int(payload.get("page"), 1)
        page_size = min(self._positive_int(payload.get("pageSize"), 10), 100)
        with self._lock:
            self._expire_locked()
            assigned = [
                o
                for o in self._orders.values()
                if o.accepted_mono is not None and o.state != REASSIGNED and o.currency == currency
            ]
            if status_filter in _ORDER_STATUS_FILTERS:
                assigned = [o for o in assigned if o.aggregator_status == status_filter]
            assigned.sort(key=lambda o: o.created_at, reverse=payload.get("ordering") != "asc")
            total = len(assigned)
            window = assigned[(page - 1) * page_size : page * page_size]
            orders = [self._order_view(o) for o in window]
        data = {"total": total, "page": page, "pageSize": page_size, "orders": orders or None}
        return _envelope(200, "Orders successfully retrieved", data)

    @staticmethod
    def _positive_int(value: Any, default: int) -> int:
        try:
            number = int(str(value))
        except ValueError:
            return default
        return number if number > 0 else default

    def _order_view(self, order: SimOrder) -> dict[str, Any]:
        return {
            "id": order.id,
            "token": order.token,
            "gatewayId": order.gateway_id,
            "amount": order.token_amount,
            "amountInUSD": order.token_amount,
            "rate": order.rate,
            "blockNumber": order.block_number,
            "txHash": order.tx_hash,
            "institution": order.institution,
            "accountIdentifier": order.account_identifier,
            "accountName": order.account_name,
            "providerId": self.provider_id,
            "memo": order.memo,
            "network": order.network,
            "status": order.aggregator_status,
            "updatedAt": _rfc3339(order.updated_at),
            "createdAt": _rfc3339(order.created_at),
            "transactionLogs": None,
            "cancellationReasons": list(order.cancel_reasons) or None,
        }

    def _node_info(self, call: _Call, payload: dict[str, Any], raw_id: str) -> _Reply:
        if not self.node_url:
            return _envelope(503, "Failed to fetch node info")
        try:
            response = self._node_session.get(f"{self.node_url}/info", timeout=(self.connect_timeout, 10.0))
        except requests.RequestException:
            return _envelope(503, "Failed to fetch node info")
        ok, body = _parse_node_answer(response.content)
        if response.status_code >= 400 or not ok:
            return _envelope(503, "Failed to fetch node info")
        data = body.get("data")
        if not isinstance(data, dict):
            return _envelope(503, "Invalid data format")
        service = data.get("serviceInfo")
        if not isinstance(service, dict):
            return _envelope(503, "Invalid service info format")
        served = service.get("currencies")
        if not isinstance(served, list) or any(c not in served for c in self.currencies):
            return _envelope(503, "Currencies data is not in expected format")
        return _envelope(200, "Node info fetched successfully", body)

    # --------------------------------------------------------------------------------- control API

    def _control(self, call: _Call) -> _Reply:
        if call.method == "GET" and call.path == "/_sim/orders":
            return _envelope(200, "Orders", [self._summary(o) for o in self.orders()])
        if call.method == "POST" and call.path == "/_sim/offer":
            try:
                options = json.loads(call.body) if call.body else {}
                if not isinstance(options, dict):
                    raise ValueError("body must be a JSON object")
                offered = self.offer(
                    str(options.get("amount", "5000")),
                    currency=str(options.get("currency", self.currencies[0] if self.currencies else "NGN")),
                    institution=str(options.get("institution", "ABNGNGLA")),
                    flavour=str(options.get("flavour", "new_order")),
                    block=False,
                )
            except ValueError as exc:
                return _envelope(400, str(exc))
            return _envelope(200, "Offered", self._summary(offered))
        return _envelope(404, "Route Not Found")

    @staticmethod
    def _summary(order: SimOrder) -> dict[str, Any]:
        return {
            "id": order.id,
            "flavour": order.flavour,
            "amount": order.amount,
            "currency": order.currency,
            "state": order.state,
            "outcome": order.outcome,
            "acceptCount": order.accept_count,
            "txIds": order.tx_ids,
            "offerToAcceptMs": order.offer_to_accept_ms,
            "offerToFulfilledMs": order.offer_to_fulfilled_ms,
        }
