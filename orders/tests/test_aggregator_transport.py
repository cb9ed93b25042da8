"""The aggregator calls' HTTP transport (``orders.clients.transport``), against real servers on loopback:
one kept-alive connection per thread, a connection the server dropped while idle replaced before use,
``Connection: close`` honoured, and every way of getting no answer reported as ``TransportError``
within the timeouts. The client sends through ``requests`` instead when a proxy is configured."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orders.clients import transport
from orders.clients.aggregator import AggregatorClient, AggregatorConfig


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[tuple[str, str, bytes]] = []
        self.close_after_answer = False  # answer with Connection: close
        self.hang_up_when_idle = False  # drop the connection right after answering, without saying so
        self.delay = 0.0

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
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.command, self.path, body))
        time.sleep(self.server.delay)
        answer = b'{"status":"success","message":"OK","data":{"n":1}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
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


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    transport.close_all()
    srv.shutdown()
    srv.server_close()


def post(url: str, body: bytes = b"{}", *, read_timeout: float = 5.0) -> transport.Answer:
    return transport.request(
        "POST",
        url,
        body=body,
        headers={"Content-Type": "application/json"},
        connect_timeout=2.0,
        read_timeout=read_timeout,
    )


def test_calls_share_one_kept_alive_connection(server: _Server) -> None:
    answers = [post(f"{server.url}/v1/provider/orders/{n}/fulfill?x=1", b'{"n":%d}' % n) for n in range(3)]

    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].body == b'{"status":"success","message":"OK","data":{"n":1}}'
    assert [(m, p, b) for m, p, b in server.requests] == [
        ("POST", f"/v1/provider/orders/{n}/fulfill?x=1", b'{"n":%d}' % n) for n in range(3)
    ]
    assert server.connections == 1


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(server: _Server) -> None:
    server.hang_up_when_idle = True
    post(f"{server.url}/a")
    time.sleep(0.1)  # the server has closed its end

    assert post(f"{server.url}/b").status == 200
    assert server.connections == 2
    assert [p for _, p, _ in server.requests] == ["/a", "/b"]  # each sent once: nothing was retried


def test_connection_close_is_honoured(server: _Server) -> None:
    server.close_after_answer = True
    post(f"{server.url}/a")
    post(f"{server.url}/b")

    assert server.connections == 2


def test_each_thread_has_its_own_connection(server: _Server) -> None:
    post(f"{server.url}/main")
    other = threading.Thread(target=lambda: post(f"{server.url}/other"))
    other.start()
    other.join()

    assert server.connections == 2


def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(transport.TransportError, match="ConnectionRefusedError"):
        post(f"http://127.0.0.1:{port}/a")


def test_an_answer_slower_than_the_read_timeout_is_a_transport_error(server: _Server) -> None:
    server.delay = 1.0
    started = time.monotonic()

    with pytest.raises(transport.TransportError):
        post(f"{server.url}/slow", read_timeout=0.2)

    assert time.monotonic() - started < 0.9
    server.delay = 0.0
    assert post(f"{server.url}/after").status == 200  # a fresh connection, not the timed-out one


def test_a_server_that_hangs_up_without_answering_is_a_transport_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        with pytest.raises(transport.TransportError, match="RemoteDisconnected"):
            post(f"http://127.0.0.1:{listener.getsockname()[1]}/a")
    finally:
        listener.close()
        transport.close_all()


def config(base_url: str) -> AggregatorConfig:
    return AggregatorConfig(
        base_url=base_url,
        provider_path="/v1/provider",
        client_id="client",
        secret="secret",
        connect_timeout=2.0,
        read_timeout=5.0,
    )


def test_the_client_goes_direct_unless_a_proxy_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    direct: list[bool] = []
    for proxy in ("", "http://127.0.0.1:3128"):
        if proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy)
        # a new thread reads the environment afresh (each thread keeps its session)
        worker = threading.Thread(
            target=lambda: direct.append(AggregatorClient(config("http://agg.test")).direct)
        )
        worker.start()
        worker.join()

    assert direct == [True, False]
