"""The one way to parse JSON bytes that come from outside: request bodies, PSP webhooks and answers,
the aggregator's answers.

:func:`loads` is ``json.loads`` with ``parse_float=Decimal`` plus the refusals that keep hostile input
from turning into a crash later:

* nesting deeper than :data:`MAX_DEPTH` is refused *before* the parser runs (the stdlib parser recurses
  and raises ``RecursionError`` near a depth of 1000; 30,000 ``[`` would otherwise reach it);
* bytes must be UTF-8 (no BOM, no UTF-16/32, which ``json.loads`` would otherwise guess);
* a ``\\uXXXX`` escape that leaves a lone surrogate (``"\\ud800"``) is refused: the text is not
  Unicode, cannot be encoded as UTF-8 and makes PostgreSQL refuse the row (``UnicodeEncodeError``);
* ``NaN``, ``Infinity`` and ``-Infinity`` are refused (not JSON).

Every refusal is a :class:`JsonRefused`, a ``ValueError``, so callers that already treat ``ValueError``
as "unreadable" stay correct. The first three are :class:`UnsafeJson`: whatever else a caller tolerates
(an MTN callback that is not JSON at all is still a hint to re-read the transfer), it refuses these.

The aggregator's signature check has its own decoder (:func:`provision.canonical_json.go_loads`,
iterative, Go's rules, U+FFFD for a lone surrogate); this module is for the data the node acts on.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Final

__all__ = ["MAX_DEPTH", "JsonRefused", "UnsafeJson", "loads"]

#: Deepest nesting of arrays/objects accepted. The deepest legitimate payload (a PSP answer or webhook)
#: is under 10 levels; the stdlib parser recurses, so the limit must stay well below ~1000.
MAX_DEPTH: Final = 32

_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET: Final = re.compile(r"[\[\]{}]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class JsonRefused(ValueError):
    """The bytes are not JSON the node accepts (malformed, too deep, not UTF-8, not Unicode text)."""


class UnsafeJson(JsonRefused):
    """Nesting deeper than the limit, bytes that are not UTF-8, or a lone surrogate: never processed."""


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not valid JSON")


def _too_deep(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (linear, no recursion)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # cannot nest deeper than the number of openings: the usual case, at C speed
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _first_surrogate(value: Any) -> str | None:
    """The path of the first key or string holding a surrogate code point, or None (iterative)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path or "(top level)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return f"{path}.<key>" if path else "<key>"
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    return None


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON: objects as dicts, non-integers as ``Decimal``. Raises :class:`JsonRefused`."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsafeJson(f"the body is not UTF-8 text (byte {exc.start})") from None
    else:
        text = raw
        if _SURROGATE.search(text):
            raise UnsafeJson("the text holds a lone surrogate: not Unicode text")
    if _too_deep(text, max_depth):
        raise UnsafeJson(f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except JsonRefused:
        raise
    except RecursionError:  # the depth check makes this unreachable; never let it become a 500
        raise UnsafeJson(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, or an integer beyond Python's digit limit
        raise JsonRefused(str(exc)) from None
    if "\\u" in text:  # only an escape can produce a surrogate in text decoded from UTF-8
        where = _first_surrogate(value)
        if where is not None:
            raise UnsafeJson(f"a \\u escape at {where[:100]} leaves a lone surrogate: not Unicode text")
    return value
