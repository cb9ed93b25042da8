"""The one JSON envelope every API answer uses: ``{"status", "message", "data"}`` in that order."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response


def success(message: str, data: Any = None, *, status: int = 200) -> Response:
    return Response({"status": "success", "message": message, "data": data}, status=status)


def error(
    message: str, data: Any = None, *, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    return Response({"status": "error", "message": message, "data": data}, status=status, headers=headers)
