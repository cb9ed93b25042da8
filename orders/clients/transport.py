"""HTTP/1.1 calls to the aggregator over kept-alive connections: one connection per thread and origin.

Every order costs the worker three calls to the aggregator (accept, fulfil ``pending``, fulfil
``success``). Through ``requests`` each call cost ~1.5 ms of CPU (preparing the request, merging
settings, the cookie jar, hooks, urllib3's pool), of which ~0.6 ms is the HTTP exchange itself; this
module makes the exchange with the standard library's ``http.client`` and nothing around it.

What it keeps from ``requests``/urllib3 as the node used them: separate connect and read timeouts, TLS
verified against the CA bundle in ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` or certifi's, no retries of
its own (the callers decide: the outbox retries with a fresh signature), and a kept-alive connection the
server has closed meanwhile is noticed before it is used (the socket is readable) and replaced, so an
idle connection the aggregator dropped does not turn into a failed call. A connection is closed after
any error and whenever the server says ``Connection: close``. Calls through an HTTP proxy (the proxy
environment variables) still go through ``requests``: see ``orders.clients.aggregator``.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from email.message import Message
from functools import cache
from urllib.parse import urlsplit


class TransportError(Exception):
    """No HTTP answer: refused, reset, timed out, TLS failure or a malformed answer."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: bytes


@cache
def _tls_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile or None)


def _ca_bundle() -> str:
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        return bundle
    try:
        import certifi
    except ImportError:  # the system's store
        return ""
    return str(certifi.where())


def _dropped(sock: socket.socket | None) -> bool:
    """True when an idle kept-alive socket is closed by the server (readable with nothing asked). ``poll``
    where the platform has it: ``select`` cannot watch a descriptor numbered 1024 or more."""
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Connections(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_origin: dict[tuple[str, str, int], http.client.HTTPConnection] = {}


_local = _Connections()


def _connection(scheme: str, host: str, port: int, connect_timeout: float) -> http.client.HTTPConnection:
    if _local.pid != os.getpid():  # a forked child never shares its parent's sockets
        _local.by_origin, _local.pid = {}, os.getpid()
    key = (scheme, host, port)
    connection = _local.by_origin.get(key)
    if connection is not None and _dropped(connection.sock):
        connection.close()
        connection = None
    if connection is None:
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=_tls_context(_ca_bundle())
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        _local.by_origin[key] = connection
    return connection


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str],
    connect_timeout: float,
    read_timeout: float,
) -> Answer:
    """Send one request and read the whole answer; ``TransportError`` when there is no answer."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"unsupported URL {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    connection = _connection(scheme, parts.hostname, port, connect_timeout)
    try:
        if connection.sock is None:
            connection.timeout = connect_timeout
            connection.connect()
        assert connection.sock is not None  # noqa: S101 - connect() sets it or raises
        connection.sock.settimeout(read_timeout)
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise TransportError(type(exc).__name__) from exc
    if response.will_close:
        connection.close()
    return Answer(status=response.status, headers=response.headers, body=content)


def close_all() -> None:
    """Close this thread's connections (tests, and a process about to stop)."""
    for connection in _local.by_origin.values():
        connection.close()
    _local.by_origin.clear()
