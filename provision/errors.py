"""Domain errors that map to HTTP answers in one place (``provision.exception_handler``).

Services raise subclasses of :class:`ApplicationError`; they never raise DRF exceptions.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A refusal with a stable machine-readable ``code`` and the HTTP status it maps to."""

    code = "application_error"
    http_status = 400

    def __init__(self, message: str, *, errors: dict[str, list[str]] | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.context = context


class NotFound(ApplicationError):
    code = "not_found"
    http_status = 404


class Conflict(ApplicationError):
    code = "conflict"
    http_status = 409


class Refused(ApplicationError):
    code = "refused"
    http_status = 422


class Unavailable(ApplicationError):
    code = "unavailable"
    http_status = 503
