"""Request id: taken from ``X-Request-ID`` when the caller sent a sane one, else made; echoed back."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from provision import request_context

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else request_context.new_request_id()
        token = request_context.set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_context.reset_request_id(token)
        response["X-Request-ID"] = request_id
        return response
