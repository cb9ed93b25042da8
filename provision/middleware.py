"""Request id: taken from ``X-Request-ID`` when the caller sent a sane one, else made; echoed back.

The id is bound for the whole request (``provision.request_context``), so every log line written while
serving it carries it, and outbound aggregator calls send it on.

One ``http.request`` line per request, with the id, replaces gunicorn's text access log and Django's
own ``django.request`` warning for 4xx/5xx answers (Django writes that one after the middleware has
returned, when the id is no longer bound; the answer is marked as logged so it is not written twice).
Levels follow Django's: INFO below 400, WARNING for 4xx, ERROR for 5xx; probes and scrapes that
succeed are DEBUG. Unhandled exceptions are still logged by Django, with their traceback and the id.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from provision import request_context

logger = logging.getLogger("provision.access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_QUIET_PATHS = ("/health", "/metrics")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else request_context.new_request_id()
        token = request_context.set_request_id(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            logger.log(
                _level(request.path, response.status_code),
                "http.request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            response._has_been_logged = True  # type: ignore[attr-defined]  # see the module docstring
        finally:
            request_context.reset_request_id(token)
        return response


def _level(path: str, status: int) -> int:
    if path.startswith(_QUIET_PATHS):
        return logging.DEBUG if status < 500 else logging.WARNING
    if status >= 500:
        return logging.ERROR
    return logging.WARNING if status >= 400 else logging.INFO
