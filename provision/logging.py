"""Logging helpers: every record carries the correlation id of the work it belongs to."""

from __future__ import annotations

import logging

from provision import request_context


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_context.get_request_id()
        return True


def mask_account(account: str | None) -> str:
    """Show only the last four characters of an account number: ``******6789``."""
    if not account:
        return ""
    return "*" * max(len(account) - 4, 0) + account[-4:]
