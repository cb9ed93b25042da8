"""Rate limits for the API (DRF throttling), counted in the default cache.

One throttle class, ``ScopedCacheThrottle``, is the project's ``DEFAULT_THROTTLE_CLASSES``. It finds
the scope of a request without the views naming one:

1. the view's own ``throttle_scope`` attribute, when it has one (DRF's convention);
2. else ``THROTTLE_SCOPES[<url name>]`` from settings (``new-order`` -> ``new_order``, ...);
3. else ``default``.

and counts per *client*: the authenticated aggregator's client id on the signed endpoints, the client
IP (``client_ip``) everywhere else. The rate of a scope is ``THROTTLE_RATES[scope]`` (``None``: not
limited). Over the limit the view answers 429 with ``Retry-After`` (the exception handler keeps the
header and writes the error envelope).

Counting is a fixed window per (scope, client): one ``cache.add`` or ``cache.incr`` per request, O(1)
whatever the rate (DRF's ``SimpleRateThrottle`` keeps a list of every request time in the window, which
costs O(rate) per request at the rates the aggregator needs). With the default in-process cache each
web process counts on its own; set ``CACHE_URL`` to a shared cache for node-wide limits.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

from provision.throttle_rates import parse_rate

if TYPE_CHECKING:
    from django.http import HttpRequest
    from rest_framework.request import Request
    from rest_framework.views import APIView


def client_ip(request: HttpRequest | Request) -> str:
    """The client's address: REMOTE_ADDR, or the NUM_PROXIES-th address from the right of
    X-Forwarded-For when that many trusted proxies sit in front of the node (the left part of the
    header is written by the client and can be forged). Also Axes' ``AXES_CLIENT_IP_CALLABLE``."""
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    proxies = int(getattr(settings, "NUM_PROXIES", 0) or 0)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    addresses = [part.strip() for part in str(forwarded).split(",") if part.strip()]
    if not addresses:
        return remote
    return addresses[-min(proxies, len(addresses))]


class ScopedCacheThrottle(BaseThrottle):
    cache_alias = "default"

    def __init__(self) -> None:
        self.retry_after: float | None = None

    @staticmethod
    def scope_for(request: Request, view: APIView) -> str:
        explicit = getattr(view, "throttle_scope", None)
        if explicit:
            return str(explicit)
        url_name = getattr(getattr(request._request, "resolver_match", None), "url_name", None)
        scopes: dict[str, str] = getattr(settings, "THROTTLE_SCOPES", {})
        return scopes.get(url_name or "", "default")

    @staticmethod
    def ident_for(request: Request) -> str:
        # Throttles run after authentication (APIView.initial), so this reads the principal it found.
        user = request.user
        client_id = getattr(user, "client_id", None)
        if client_id:
            return f"client:{client_id}"
        return f"ip:{client_ip(request)}"

    def allow_request(self, request: Request, view: APIView) -> bool:
        scope = self.scope_for(request, view)
        rates: dict[str, str] = getattr(settings, "THROTTLE_RATES", {})
        rate = parse_rate(rates.get(scope) or rates.get("default") or "off")
        if rate is None:
            return True
        limit, period = rate
        now = time.time()
        window = int(now // period)
        key = f"throttle:{scope}:{self.ident_for(request)}:{period}:{window}"
        count = self._hit(key, timeout=period + 1)
        if count <= limit:
            return True
        self.retry_after = max((window + 1) * period - now, 1.0)
        return False

    def _hit(self, key: str, *, timeout: int) -> int:
        cache = caches[self.cache_alias]
        if cache.add(key, 1, timeout=timeout):
            return 1
        try:
            return int(cache.incr(key))
        except ValueError:  # the window's key expired between add and incr
            cache.add(key, 1, timeout=timeout)
            return 1

    def wait(self) -> float | None:
        return self.retry_after
