"""Parse JSON bodies whatever the Content-Type says; always answer JSON.

The Go aggregator sends no Content-Type header: a parser that insisted on ``application/json`` would
answer 415 and the aggregator would give the order to someone else. Bodies go through
:func:`provision.untrusted_json.loads` (depth limit, UTF-8 only, no lone surrogates, no NaN): whatever
it refuses is a 400 envelope, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from provision import untrusted_json


class AnyContentJSONParser(BaseParser):
    media_type = "*/*"

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            return untrusted_json.loads(raw)
        except untrusted_json.JsonRefused as exc:
            raise ParseError(f"Invalid JSON body: {exc}") from None


class IgnoreClientContentNegotiation(BaseContentNegotiation):
    """Answer JSON whatever the client asked for; pick the first parser for any body."""

    def select_parser(self, request: Request, parsers: list[BaseParser]) -> BaseParser | None:  # type: ignore[override]
        return parsers[0] if parsers else None

    def select_renderer(  # type: ignore[override]
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type
