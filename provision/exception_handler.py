"""Map every API error to the envelope ``{"status":"error","message":...,"data":{"code","errors"}}``."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from provision import request_context, responses
from provision.errors import ApplicationError

logger = logging.getLogger(__name__)


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        result: dict[str, list[str]] = {}
        for field, messages in detail.items():
            if isinstance(messages, dict):
                for sub_field, sub_messages in _field_errors(messages).items():
                    result[f"{field}.{sub_field}"] = sub_messages
            elif isinstance(messages, list):
                flat: list[str] = []
                for message in messages:
                    if isinstance(message, dict):
                        for sub_field, sub_messages in _field_errors(message).items():
                            result[f"{field}.{sub_field}"] = sub_messages
                    else:
                        flat.append(str(message))
                if flat:
                    result[str(field)] = flat
            else:
                result[str(field)] = [str(messages)]
        return result
    if isinstance(detail, list):
        return {"non_field_errors": [str(message) for message in detail]}
    return {"non_field_errors": [str(detail)]}


def envelope_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return responses.error(exc.message, {"code": exc.code, "errors": exc.errors}, status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return responses.error("Validation failed", {"code": "invalid", "errors": detail}, status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None  # Django's handler500 answers with the JSON envelope and the request id.
    if isinstance(exc, exceptions.ValidationError):
        return responses.error(
            "Validation failed", {"code": "invalid", "errors": _field_errors(exc.detail)}, status=400
        )
    if isinstance(exc, exceptions.APIException):
        message = str(exc.detail) if not isinstance(exc.detail, dict | list) else exc.default_detail
        headers = {
            key: value for key, value in response.items() if key in {"Retry-After", "WWW-Authenticate"}
        }
        codes = exc.get_codes()
        data: dict[str, object] = {"code": codes if isinstance(codes, str) else exc.default_code}
        wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
        if wait is not None:
            data["retryAfter"] = math.ceil(wait)  # as the aggregator's own 429 carries retry_after
        return responses.error(str(message), data, status=response.status_code, headers=headers)
    return response


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        {"status": "error", "message": "Route Not Found", "data": {"code": "not_found"}}, status=404
    )


def json_500(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "status": "error",
            "message": "Internal server error",
            "data": {"code": "server_error", "requestId": request_context.get_request_id()},
        },
        status=500,
    )


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        {"status": "error", "message": "Bad request", "data": {"code": "bad_request"}}, status=400
    )


def json_403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        {"status": "error", "message": "Forbidden", "data": {"code": "forbidden"}}, status=403
    )
