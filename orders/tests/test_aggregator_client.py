"""The aggregator client's HTTP behaviour, against real servers on loopback: one kept-alive connection per
thread, a connection the server dropped while idle replaced before use, ``Connection: close`` honoured,
nothing sent twice, every way of getting no answer (refused, timed out, hung up) ``AggregatorUnavailable``
within the timeouts, and each status classified for the outbox (429 and 5xx retryable, other 4xx final)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orders.clients.aggregator import (
    AggregatorClient,
    AggregatorConfig,
    AggregatorError,
    AggregatorRefused,
    AggregatorUnavailable,
    shared_session,
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.paths: list[str] = []
        self.status = 200
        self.extra_headers: dict[str, str] = {}
        self.close_after_answer = False  # answer with Connection: close
        self.hang_up_when_idle = False  # drop the connection right after answering, without saying so
        self.delay = 0.0
        self.answer = b'{"status":"success","message":"OK","data":{"n":1}}'

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.paths.append(self.path.split("?", 1)[0])
        time.sleep(self.server.delay)
        answer = self.server.answer
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        for name, value in self.server.extra_headers.items():
            self.send_header(name, value)
        if self.server.close_after_answer:
            self.send_header("Connection", "close")
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting (timeout test)
            self.wfile.write(answer)
        if self.server.hang_up_when_idle:
            self.close_connection = True

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        return


def _close_this_threads_session() -> None:
    shared_session("http://127.0.0.1").close()  # its pooled connections, so each test counts its own


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _close_this_threads_session()
    yield srv
    _close_this_threads_session()
    srv.shutdown()
    srv.server_close()


def client(base_url: str, *, read_timeout: float = 5.0) -> AggregatorClient:
    config = AggregatorConfig(
        base_url=base_url,
        provider_path="/v1/provider",
        client_id="client",
        secret="secret",
        connect_timeout=2.0,
        read_timeout=read_timeout,
    )
    return AggregatorClient(config)


def test_calls_share_one_kept_alive_connection(server: _Server) -> None:
    answers = [
        client(server.url).fulfil(f"o{n}", psp="sandbox", tx_id="t", validation_status="pending")
        for n in range(3)
    ]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].data == {"n": 1}
    assert server.paths == [f"/v1/provider/orders/o{n}/fulfill" for n in range(3)]
    assert server.connections == 1


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(server: _Server) -> None:
    server.hang_up_when_idle = True
    client(server.url).decline("a", "reason")
    time.sleep(0.1)  # the server has closed its end

    assert client(server.url).decline("b", "reason").status_code == 200
    assert server.connections == 2
    assert server.paths == [
        "/v1/provider/orders/a/decline",
        "/v1/provider/orders/b/decline",
    ]  # sent once each


def test_connection_close_is_honoured(server: _Server) -> None:
    server.close_after_answer = True
    client(server.url).decline("a", "reason")
    client(server.url).decline("b", "reason")

    assert server.connections == 2


def test_each_thread_has_its_own_connection(server: _Server) -> None:
    client(server.url).decline("main", "reason")

    def other_thread() -> None:
        client(server.url).decline("other", "reason")
        _close_this_threads_session()

    other = threading.Thread(target=other_thread)
    other.start()
    other.join()

    assert server.connections == 2


def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed

    with pytest.raises(AggregatorUnavailable, match="ConnectionError") as raised:
        client(f"http://127.0.0.1:{port}").decline("a", "reason")

    assert raised.value.status_code is None


def test_an_answer_slower_than_the_read_timeout_is_unavailable(server: _Server) -> None:
    server.delay = 1.0
    started = time.monotonic()

    with pytest.raises(AggregatorUnavailable, match="ReadTimeout"):
        client(server.url, read_timeout=0.2).decline("slow", "reason")

    assert time.monotonic() - started < 0.9
    server.delay = 0.0
    assert client(server.url).decline("after", "reason").status_code == 200  # a fresh connection
    assert server.paths == ["/v1/provider/orders/slow/decline", "/v1/provider/orders/after/decline"]


def test_a_server_that_hangs_up_without_answering_is_unavailable_and_the_call_is_not_repeated() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[bytes] = []

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at the end of the test
                return
            accepted.append(conn.recv(65536))
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        with pytest.raises(AggregatorUnavailable, match="ConnectionError"):
            client(f"http://127.0.0.1:{listener.getsockname()[1]}").decline("a", "reason")
    finally:
        listener.close()
        _close_this_threads_session()

    assert len(accepted) == 1
    assert accepted[0].startswith(b"POST /v1/provider/orders/a/decline ")


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (500, AggregatorUnavailable, True),
        (502, AggregatorUnavailable, True),
        (503, AggregatorUnavailable, True),
        (429, AggregatorUnavailable, True),
        (400, AggregatorRefused, False),
        (401, AggregatorRefused, False),
        (404, AggregatorRefused, False),
        (409, AggregatorRefused, False),
    ],
)
def test_error_statuses_are_classified_for_the_outbox(
    server: _Server, status: int, error: type[AggregatorError], retryable: bool
) -> None:
    server.status = status
    server.extra_headers = {"Retry-After": "7"}

    with pytest.raises(error) as raised:
        client(server.url).decline("a", "reason")

    assert type(raised.value) is error
    assert raised.value.retryable is retryable
    assert raised.value.status_code == status
    assert raised.value.message == "OK"  # the body's message
    if retryable:
        assert raised.value.retry_after == 7.0
    assert server.paths == ["/v1/provider/orders/a/decline"]  # sent once: no retries of the client's own


def test_a_get_goes_through_the_same_session(server: _Server) -> None:
    assert client(server.url).list_orders(currency="NGN") == []
    assert client(server.url).decline("a", "reason").status_code == 200

    assert server.paths == ["/v1/provider/orders", "/v1/provider/orders/a/decline"]
    assert server.connections == 1


@pytest.mark.parametrize(
    "answer",
    [b"[" * 30000 + b"]" * 30000, b'{"message":"OK","data":{"accountName":"\\ud800"}}'],
    ids=["nested_30000", "lone_surrogate"],
)
def test_an_answer_the_node_refuses_to_read_gives_no_data_not_a_crash(server: _Server, answer: bytes) -> None:
    server.answer = answer

    result = client(server.url).decline("a", "reason")

    assert (result.status_code, result.data) == (200, None)
