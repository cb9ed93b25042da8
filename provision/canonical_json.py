"""Go ``encoding/json`` compatible canonical JSON, for the aggregator's HMAC.

The aggregator (Go) never signs the bytes it receives: it decodes the body
with ``json.Unmarshal`` into ``map[string]interface{}`` and signs
``json.Marshal`` of the result (shared/protocol/aggregator.md, section C).
This module reproduces both halves byte for byte:

``go_loads``
    decodes like ``json.Unmarshal`` into ``map[string]interface{}``: every
    number becomes a ``float`` (float64), a repeated key keeps its last value,
    unpaired ``\\uXXXX`` surrogates and every byte that is not valid UTF-8
    become U+FFFD, and anything Go refuses (NaN, a BOM, raw control
    characters in strings, trailing data, numbers beyond float64, nesting
    deeper than 10000, a top-level array or scalar) raises
    :class:`CanonicalJsonError` with Go's error text. Top-level ``null``
    gives an empty :class:`GoNilMap`.
``go_dumps``
    encodes like ``json.Marshal`` (Go >= 1.22): keys sorted by their UTF-8
    bytes at every depth, no whitespace, Go's float64 formatting and Go's
    string escaping (``<`` ``>`` ``&`` U+2028 U+2029 escaped, everything else
    non-ASCII raw UTF-8).

Deliberate refusals of ``go_dumps`` (all :class:`CanonicalJsonError`):

* ``int`` values with ``abs(n) >= 2**53``: the aggregator decodes every
  number into a float64, so it would sign a *different* (rounded) number
  than the one written; send such values as strings.
* ``Decimal``: money travels as decimal strings in this protocol, never as
  JSON numbers; convert explicitly (``str(amount)``).
* NaN and infinities (Go refuses them too), strings holding lone surrogates,
  non-``str`` mapping keys, ``bytes`` (Go would write base64), cyclic
  structures and any other type.

The parser and the encoder are iterative, so depth is limited only by Go's
own limit (10000), not by Python's recursion limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_SAFE_INTEGER",
    "CanonicalJsonError",
    "GoNilMap",
    "TimestampError",
    "canonicalize",
    "go_dumps",
    "go_loads",
    "go_parse_float",
    "go_parse_query",
    "normalize_timestamp",
    "query_payload",
]

#: Go's ``encoding/json`` scanner refuses nesting deeper than this.
MAX_NESTING_DEPTH: Final = 10000

#: ``go_dumps`` refuses Python ints whose absolute value reaches this (2**53):
#: above it a float64 cannot hold every integer, so Go would sign another number.
MAX_SAFE_INTEGER: Final = 2**53


class CanonicalJsonError(ValueError):
    """The input cannot be decoded or encoded the way Go's encoding/json does."""


class TimestampError(CanonicalJsonError):
    """The payload's ``timestamp`` fails the aggregator's checks 6-7 (A4.1)."""


class GoNilMap(dict[str, Any]):
    """An empty dict standing for Go's *nil* map.

    ``json.Unmarshal(b"null", &m)`` leaves ``m`` nil without error, and
    ``json.Marshal`` writes a nil map as ``null`` (vector ``null_body``).
    ``go_loads(b"null")`` therefore returns an instance of this class, which
    compares equal to ``{}``; ``go_dumps`` writes it as ``null`` while it is
    empty.
    """

    __slots__ = ()


# ---------------------------------------------------------------------------
# Decoding (json.Unmarshal into map[string]interface{})
# ---------------------------------------------------------------------------

_WS: Final = re.compile(rb"[ \t\n\r]*")
# Bytes that may appear unescaped inside a string (Go accepts any byte >= 0x20
# except '"' and '\\', including invalid UTF-8, which it replaces later).
_PLAIN: Final = re.compile(rb'[^"\\\x00-\x1f]*')
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_DIGITS: Final = frozenset(b"0123456789")
_SIMPLE_ESCAPES: Final = {
    ord('"'): '"',
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_LITERALS: Final[dict[int, tuple[bytes, Any]]] = {
    ord("t"): (b"true", True),
    ord("f"): (b"false", False),
    ord("n"): (b"null", None),
}
_SURROGATE_ESCAPES: Final = {cp: 0xFFFD for cp in range(0xDC80, 0xDD00)}
_GO_TYPE_NAMES: Final = {list: "array", str: "string", float: "number", bool: "bool"}
_MAP_TYPE: Final = "map[string]interface {}"
_UNEXPECTED_END: Final = "unexpected end of JSON input"
_SPACE: Final = 0x20  # what Go's scanner feeds to the current state at end of input


_GO_QUOTE_SHORT: Final = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}


def _quote_byte(c: int) -> str:
    """Go's ``quoteChar``: a byte as Go prints it in a SyntaxError."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        inner = "\\\\"
    elif 0x20 <= c < 0x7F or (0xA1 <= c <= 0xFF and c != 0xAD):
        inner = chr(c)
    elif c in _GO_QUOTE_SHORT:
        inner = _GO_QUOTE_SHORT[c]
    elif c < 0x20 or c == 0x7F:
        inner = f"\\x{c:02x}"
    else:
        inner = f"\\u{c:04x}"
    return f"'{inner}'"


def _syntax_error(c: int, context: str) -> CanonicalJsonError:
    return CanonicalJsonError(f"invalid character {_quote_byte(c)} {context}")


def _decode_utf8(raw: bytes) -> str:
    """Decode like Go: each byte that is not part of valid UTF-8 becomes one U+FFFD.

    Python's ``errors="replace"`` would replace a truncated sequence (e.g.
    ``E2 82``) with a single U+FFFD; ``surrogateescape`` maps every invalid
    byte to its own lone surrogate, which is then replaced one for one.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape").translate(_SURROGATE_ESCAPES)


def _hex4(s: bytes, i: int) -> int | None:
    """The code unit of ``\\uXXXX`` at ``s[i:]``, or None if it is not one (Go's getu4)."""
    if s[i : i + 2] != b"\\u" or len(s) < i + 6:
        return None
    digits = s[i + 2 : i + 6]
    if not all(c in _HEX for c in digits):
        return None
    return int(digits, 16)


class _Decoder:
    __slots__ = ("max_depth", "n", "range_error", "s")

    def __init__(self, s: bytes, max_depth: int = MAX_NESTING_DEPTH) -> None:
        self.s = s
        self.n = len(s)
        self.max_depth = max_depth
        # Go's decoder keeps going after a number out of range and reports it
        # at the end, and only if the whole input is syntactically valid.
        self.range_error: str | None = None

    def at(self, i: int) -> int:
        return self.s[i] if i < self.n else _SPACE

    def skip_ws(self, i: int) -> int:
        m = _WS.match(self.s, i)  # matches the empty string too
        return m.end() if m else i

    def expect_more(self, i: int) -> int:
        if i >= self.n:
            raise CanonicalJsonError(_UNEXPECTED_END)
        return self.s[i]

    def string(self, i: int) -> tuple[str, int]:
        """Parse the string whose opening quote is at ``i``; return it and the index after it."""
        s, n = self.s, self.n
        i += 1
        parts: list[str] = []
        while True:
            m = _PLAIN.match(s, i)  # matches the empty string too
            j = m.end() if m else i
            if j > i:
                parts.append(_decode_utf8(s[i:j]))
                i = j
            if i >= n:
                raise CanonicalJsonError(_UNEXPECTED_END)
            c = s[i]
            if c == 0x22:  # '"'
                return "".join(parts), i + 1
            if c != 0x5C:  # a raw control character
                raise _syntax_error(c, "in string literal")
            e = self.at(i + 1)
            simple = _SIMPLE_ESCAPES.get(e)
            if simple is not None:
                parts.append(simple)
                i += 2
                continue
            if e != ord("u"):
                raise _syntax_error(e, "in string escape code")
            for k in range(i + 2, i + 6):
                if self.at(k) not in _HEX:
                    raise _syntax_error(self.at(k), "in \\u hexadecimal character escape")
            unit = int(s[i + 2 : i + 6], 16)
            i += 6
            if 0xD800 <= unit < 0xE000:
                # Go's unquote: a high surrogate followed by an escaped low
                # surrogate is one character; any other surrogate is U+FFFD
                # and the following escape, if any, is read on its own.
                low = _hex4(s, i) if unit < 0xDC00 else None
                if low is not None and 0xDC00 <= low < 0xE000:
                    parts.append(chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)))
                    i += 6
                else:
                    parts.append("\ufffd")
            else:
                parts.append(chr(unit))

    def number(self, i: int) -> tuple[float, int]:
        """Scan a number like Go's scanner and convert it like ``strconv.ParseFloat``."""
        s = self.s
        start = i
        if s[i] == 0x2D:  # '-'
            i += 1
            if self.at(i) not in _DIGITS:
                raise _syntax_error(self.at(i), "in numeric literal")
        if s[i] == 0x30:  # a leading '0' stands alone
            i += 1
        else:
            while self.at(i) in _DIGITS:
                i += 1
        if self.at(i) == 0x2E:  # '.'
            i += 1
            if self.at(i) not in _DIGITS:
                raise _syntax_error(self.at(i), "after decimal point in numeric literal")
            while self.at(i) in _DIGITS:
                i += 1
        if self.at(i) in (0x65, 0x45):  # 'e' 'E'
            i += 1
            if self.at(i) in (0x2B, 0x2D):
                i += 1
            if self.at(i) not in _DIGITS:
                raise _syntax_error(self.at(i), "in exponent of numeric literal")
            while self.at(i) in _DIGITS:
                i += 1
        text = s[start:i].decode("ascii")
        value = float(text)  # correctly rounded, like Go; underflow gives (-)0.0
        if math.isinf(value):
            # Go saves the error and goes on (the infinity is a placeholder
            # that never reaches the caller).
            if self.range_error is None:
                self.range_error = f"json: cannot unmarshal number {text} into Go value of type float64"
        return value, i

    def literal(self, i: int) -> tuple[Any, int]:
        word, value = _LITERALS[self.s[i]]
        name = word.decode("ascii")
        for k in range(1, len(word)):
            c = self.at(i + k)
            if c != word[k]:
                raise _syntax_error(c, f"in literal {name} (expecting {chr(word[k])!r})")
        return value, i + len(word)

    def key(self, i: int) -> tuple[str, int]:
        """Parse ``"key" :`` starting at ``i`` (after whitespace); return the key and the value's index."""
        c = self.expect_more(i)
        if c != 0x22:
            raise _syntax_error(c, "looking for beginning of object key string")
        key, i = self.string(i)
        i = self.skip_ws(i)
        c = self.expect_more(i)
        if c != 0x3A:  # ':'
            raise _syntax_error(c, "after object key")
        return key, self.skip_ws(i + 1)

    def parse(self) -> Any:
        s, n = self.s, self.n
        # Open containers, innermost last; ``keys`` holds the pending key of
        # each open object ("" for arrays, unused).
        stack: list[dict[str, Any] | list[Any]] = []
        keys: list[str] = []
        i = self.skip_ws(0)
        while True:
            # ---- one value starting at s[i]
            c = self.expect_more(i)
            value: Any
            if c == 0x7B or c == 0x5B:  # '{' '['
                if len(stack) >= self.max_depth:
                    raise _syntax_error(c, "exceeded max depth")
                i = self.skip_ws(i + 1)
                if c == 0x7B:
                    if self.expect_more(i) == 0x7D:
                        value, i = {}, i + 1
                    else:
                        key, i = self.key(i)
                        stack.append({})
                        keys.append(key)
                        continue
                elif self.expect_more(i) == 0x5D:
                    value, i = [], i + 1
                else:
                    stack.append([])
                    keys.append("")
                    continue
            elif c == 0x22:
                value, i = self.string(i)
            elif c == 0x2D or c in _DIGITS:
                value, i = self.number(i)
            elif c in _LITERALS:
                value, i = self.literal(i)
            else:
                raise _syntax_error(c, "looking for beginning of value")
            # ---- the value is complete: store it, closing containers as they end
            while True:
                i = self.skip_ws(i)
                if not stack:
                    if i < n:
                        raise _syntax_error(s[i], "after top-level value")
                    return value
                top = stack[-1]
                c = self.expect_more(i)
                if isinstance(top, dict):
                    top[keys[-1]] = value
                    if c == 0x2C:  # ','
                        keys[-1], i = self.key(self.skip_ws(i + 1))
                        break
                    if c != 0x7D:
                        raise _syntax_error(c, "after object key:value pair")
                else:
                    top.append(value)
                    if c == 0x2C:
                        i = self.skip_ws(i + 1)
                        break
                    if c != 0x5D:
                        raise _syntax_error(c, "after array element")
                value = stack.pop()
                keys.pop()
                i += 1


def go_loads(data: bytes, *, max_depth: int = MAX_NESTING_DEPTH) -> dict[str, Any]:
    """Decode ``data`` exactly like Go's ``json.Unmarshal`` into ``map[string]interface{}``.

    Numbers become ``float``; top-level ``null`` gives an empty
    :class:`GoNilMap`. Raises :class:`CanonicalJsonError` (message = Go's
    error text) for anything Go refuses, and for nesting deeper than
    ``max_depth`` (Go's own limit by default; a caller may choose less).
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"go_loads() takes bytes, not {type(data).__name__}")
    decoder = _Decoder(data, min(max_depth, MAX_NESTING_DEPTH))
    value = decoder.parse()
    # Go reports syntax errors first (it validates the whole input before
    # decoding), then the first type mismatch or out-of-range number.
    if value is None:
        return GoNilMap()
    if not isinstance(value, dict):
        go_type = _GO_TYPE_NAMES.get(type(value), "number")
        raise CanonicalJsonError(f"json: cannot unmarshal {go_type} into Go value of type {_MAP_TYPE}")
    if decoder.range_error is not None:
        raise CanonicalJsonError(decoder.range_error)
    return value


# ---------------------------------------------------------------------------
# Encoding (json.Marshal, Go >= 1.22)
# ---------------------------------------------------------------------------

_ESCAPE_RE: Final = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')
_ESCAPES: Final = {chr(c): f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update(
    {
        '"': '\\"',
        "\\": "\\\\",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\b": "\\b",  # Go < 1.22 wrote \u0008
        "\f": "\\f",  # Go < 1.22 wrote \u000c
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
    }
)


def _escape_match(m: re.Match[str]) -> str:
    return _ESCAPES[m.group()]


def _encode_string(value: str) -> str:
    return '"' + _ESCAPE_RE.sub(_escape_match, value) + '"'


def _format_float(value: float) -> str:
    """Format a float64 like Go's ``encoding/json`` floatEncoder."""
    if math.isnan(value) or math.isinf(value):
        raise CanonicalJsonError(f"json: unsupported value: {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    # repr() gives the shortest digits that round-trip (as Go's 'g'/-1 does);
    # only the layout differs, so take the digits and lay them out Go's way.
    mantissa, _, exponent = repr(magnitude).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    # value == 0.<digits> * 10**point
    if magnitude < 1e-6 or magnitude >= 1e21:
        exp10 = point - 1
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        # Go writes e+21, e-07; encoding/json then shortens e-07 to e-7.
        return f"{sign}{body}e-{-exp10}" if exp10 < 0 else f"{sign}{body}e+{exp10:02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _format_int(value: int) -> str:
    if not -MAX_SAFE_INTEGER < value < MAX_SAFE_INTEGER:
        raise CanonicalJsonError(
            f"integer {value} is outside ±(2**53 - 1): the aggregator decodes numbers as float64 "
            "and would sign a different value; send it as a string"
        )
    return int.__repr__(value)


class _Close:
    """Work item: the end of a container (emits the bracket, leaves the cycle guard)."""

    __slots__ = ("ident", "text")

    def __init__(self, text: str, ident: int) -> None:
        self.text = text
        self.ident = ident


class _Raw:
    """Work item: literal output text (a separator and/or an encoded key)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _sorted_items(obj: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CanonicalJsonError(f"object keys must be str, not {type(key).__name__}")
        items.append((key, value))
    # Code point order is UTF-8 byte order (lone surrogates are refused later).
    items.sort(key=lambda kv: kv[0])
    return items


def go_dumps(obj: Any) -> bytes:
    """Encode ``obj`` exactly like Go's ``json.Marshal`` would encode the decoded value.

    Accepts dict/Mapping (``str`` keys), list/tuple, str, bool, None, float
    and int (``abs < 2**53``). See the module docstring for what is refused.
    """
    out: list[str] = []
    work: list[Any] = [obj]
    active: set[int] = set()  # ids of the containers being written (cycle guard)
    while work:
        item = work.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, _Close):
            active.discard(item.ident)
            out.append(item.text)
        elif item is None:
            out.append("null")
        elif item is True:
            out.append("true")
        elif item is False:
            out.append("false")
        elif isinstance(item, str):
            out.append(_encode_string(item))
        elif isinstance(item, int):
            out.append(_format_int(item))
        elif isinstance(item, float):
            out.append(_format_float(item))
        elif isinstance(item, Decimal):
            raise CanonicalJsonError(
                "Decimal values are refused: send money amounts as strings (e.g. str(amount))"
            )
        elif isinstance(item, Mapping | list | tuple):
            if isinstance(item, GoNilMap) and not item:
                out.append("null")
                continue
            ident = id(item)
            if ident in active:
                raise CanonicalJsonError("json: unsupported value: encountered a cycle")
            active.add(ident)
            if isinstance(item, Mapping):
                entries: list[tuple[str, Any]] = _sorted_items(item)
                out.append("{")
                work.append(_Close("}", ident))
                for index in range(len(entries) - 1, -1, -1):
                    key, value = entries[index]
                    work.append(value)
                    work.append(_Raw(("," if index else "") + _encode_string(key) + ":"))
            else:
                out.append("[")
                work.append(_Close("]", ident))
                for index in range(len(item) - 1, -1, -1):
                    work.append(item[index])
                    if index:
                        work.append(_Raw(","))
        else:
            raise CanonicalJsonError(f"json: unsupported type: {type(item).__name__}")
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJsonError("strings must not contain lone surrogates (not valid UTF-8)") from exc


def canonicalize(body: bytes) -> bytes:
    """The bytes the aggregator signs for a POST body: ``go_dumps(go_loads(body))``."""
    return go_dumps(go_loads(body))


# ---------------------------------------------------------------------------
# strconv.ParseFloat (for the middleware's string timestamp conversion)
# ---------------------------------------------------------------------------

_SPECIAL_INF: Final = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)
_SPECIAL_NAN: Final = re.compile(r"nan", re.IGNORECASE)
_HEX_LETTERS: Final = frozenset("abcdefABCDEF")


def _underscore_ok(s: str) -> bool:
    """Go's strconv.underscoreOK: '_' only between digits, or after a base prefix."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexadecimal = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i = 2
        saw = "0"
        hexadecimal = s[1] in "xX"
    while i < len(s):
        c = s[i]
        if c.isdigit() or (hexadecimal and c in _HEX_LETTERS):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def go_parse_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``: Go float literal syntax, underscores, hex floats.

    Returns NaN or ±inf for Go's special spellings (``nan``, ``inf``,
    ``+Infinity``...), as Go does. Raises :class:`CanonicalJsonError` where Go
    returns an error (syntax, or a finite literal beyond float64).
    """
    syntax = CanonicalJsonError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    if not text.isascii():
        raise syntax
    if _SPECIAL_INF.fullmatch(text):
        return -math.inf if text[0] == "-" else math.inf
    if _SPECIAL_NAN.fullmatch(text):
        return math.nan
    n = len(text)
    i = 1 if text[:1] in ("+", "-") else 0
    hexadecimal = i + 2 < n and text[i] == "0" and text[i + 1] in "xX"
    if hexadecimal:
        i += 2
    saw_dot = saw_digits = underscores = False
    while i < n:
        c = text[i]
        if c == "_":
            underscores = True
        elif c == ".":
            if saw_dot:
                break
            saw_dot = True
        elif c.isdigit() or (hexadecimal and c in _HEX_LETTERS):
            saw_digits = True
        else:
            break
        i += 1
    if not saw_digits:
        raise syntax
    if i < n and text[i] in ("pP" if hexadecimal else "eE"):
        i += 1
        if i < n and text[i] in "+-":
            i += 1
        if i >= n or not text[i].isdigit():
            raise syntax
        while i < n and (text[i].isdigit() or text[i] == "_"):
            underscores = underscores or text[i] == "_"
            i += 1
    elif hexadecimal:
        raise syntax  # a hexadecimal mantissa requires a 'p' exponent
    if i != n or (underscores and not _underscore_ok(text)):
        raise syntax
    clean = text.replace("_", "")
    try:
        value = float.fromhex(clean) if hexadecimal else float(clean)
    except OverflowError:
        value = math.inf
    if math.isinf(value):
        raise CanonicalJsonError(f'strconv.ParseFloat: parsing "{text}": value out of range')
    return value


# ---------------------------------------------------------------------------
# The aggregator middleware's payload handling (aggregator.md A4.1, C.3)
# ---------------------------------------------------------------------------

_TIMESTAMP_MESSAGE: Final = "Missing or invalid timestamp in payload"


def normalize_timestamp(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the aggregator middleware's checks 6-7 (A4.1) and return the payload it signs.

    * 6: a string ``timestamp`` is replaced by ``strconv.ParseFloat`` of it
      (``"1728201600"`` -> ``1728201600.0``; ``"1_728_201_600"`` and hex
      floats are accepted, as in Go); a parse error fails.
    * 7: ``timestamp`` must then be a number (int or float, not bool) != 0.

    Additionally NaN and infinities are refused: Go lets them through these
    two checks but cannot marshal them, so no signature could be checked.
    Raises :class:`TimestampError`; returns a new dict, the input is untouched.
    """
    result = dict(payload)
    timestamp = result.get("timestamp")
    if isinstance(timestamp, str):
        try:
            timestamp = go_parse_float(timestamp)
        except CanonicalJsonError as exc:
            raise TimestampError(f"{_TIMESTAMP_MESSAGE}: {exc}") from exc
        result["timestamp"] = timestamp
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or timestamp == 0:
        raise TimestampError(f"{_TIMESTAMP_MESSAGE}: timestamp must be a non-zero number")
    if isinstance(timestamp, float) and not math.isfinite(timestamp):
        raise TimestampError(f"{_TIMESTAMP_MESSAGE}: timestamp must be finite")
    return result


def _first_value(name: str, values: str | Sequence[str]) -> str | None:
    if isinstance(values, str):
        return values
    if isinstance(values, bytes | bytearray) or not isinstance(values, Sequence):
        raise CanonicalJsonError(f"query parameter {name!r}: expected str or a sequence of str")
    if not values:
        return None
    first = values[0]
    if not isinstance(first, str):
        raise CanonicalJsonError(f"query parameter {name!r}: values must be str, not {type(first).__name__}")
    return first


def query_payload(params: Mapping[str, str | Sequence[str]], timestamp: int | float | None) -> dict[str, Any]:
    """The payload the aggregator signs for a GET/DELETE request (A4.1, C.3).

    ``params`` are the *decoded* query parameters (what the receiver gets
    after percent-decoding; see :func:`go_parse_query`): each name maps to a
    string or a sequence of strings, of which only the first is signed (a
    name with an empty sequence is left out, as Go does). Django's
    ``QueryDict`` is read through ``getlist`` so its *first* value is used
    (its ``items()`` would give the last). Values stay strings.

    ``timestamp``: the number the caller also puts in the query string as
    ``timestamp=<str(timestamp)>``; it replaces any ``timestamp`` parameter.
    With ``None`` the ``timestamp`` parameter from ``params`` is used. Either
    way the result goes through :func:`normalize_timestamp`, as in the
    middleware, so a string timestamp is signed as a number.
    """
    getlist: Callable[[str], Iterable[str]] | None = getattr(params, "getlist", None)
    payload: dict[str, Any] = {}
    for name in params:
        if not isinstance(name, str):
            raise CanonicalJsonError(f"query parameter names must be str, not {type(name).__name__}")
        values = list(getlist(name)) if getlist is not None else params[name]
        first = _first_value(name, values)
        if first is not None:
            payload[name] = first
    if timestamp is not None:
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise TimestampError(f"{_TIMESTAMP_MESSAGE}: timestamp must be a number")
        payload["timestamp"] = timestamp
    return normalize_timestamp(payload)


_PERCENT: Final = re.compile(rb"%([0-9A-Fa-f]{2})")


def _query_unescape(part: str) -> str | None:
    """Go's ``url.QueryUnescape``; None where Go returns an error (the pair is then dropped)."""
    raw = part.encode("utf-8")
    if raw.count(b"%") != len(_PERCENT.findall(raw)):
        return None  # a '%' not followed by two hex digits
    decoded = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"+", b" "))
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Go keeps the bytes and json.Marshal writes each bad byte as \ufffd;
        # nothing a node sends should contain them, so refuse instead.
        raise CanonicalJsonError(f"query component {part!r} is not valid UTF-8 once decoded") from exc


def go_parse_query(raw_query: str) -> dict[str, list[str]]:
    """Parse a raw query string like Go's ``url.ParseQuery`` (as ``URL.Query()`` uses it).

    Pairs are split on ``&`` only; a pair containing ``;`` or a malformed
    ``%`` escape is dropped (Go reports an error that ``URL.Query()``
    ignores); ``+`` is a space; ``name`` without ``=`` has the value ``""``.
    Values keep their order of appearance.
    """
    result: dict[str, list[str]] = {}
    for pair in raw_query.split("&"):
        if ";" in pair or not pair:
            continue
        name, _, value = pair.partition("=")
        name_text = _query_unescape(name)
        if name_text is None:
            continue
        value_text = _query_unescape(value)
        if value_text is None:
            continue
        result.setdefault(name_text, []).append(value_text)
    return result
