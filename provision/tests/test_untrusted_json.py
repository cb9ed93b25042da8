"""provision.untrusted_json.loads: the one parser for JSON bytes from outside."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from provision import untrusted_json
from provision.untrusted_json import JsonRefused, UnsafeJson, loads


def test_numbers_are_decimal_and_integers_int() -> None:
    assert loads(b'{"a":736.155,"b":3750,"c":[1e3]}') == {
        "a": Decimal("736.155"),
        "b": 3750,
        "c": [Decimal("1E+3")],
    }


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = untrusted_json.MAX_DEPTH

    assert loads(b"[" * depth + b"]" * depth) is not None
    assert loads(b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)) is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 33 + b"]" * 33,
        b'{"a":' * 33 + b"1" + b"}" * 33,
        b"[" * 30000 + b"]" * 30000,
        b"[" * 30000,  # not even closed: refused for depth, not by recursing
    ],
)
def test_nesting_beyond_the_limit_is_refused_before_parsing(raw: bytes) -> None:
    with pytest.raises(UnsafeJson, match="nested deeper than 32"):
        loads(raw)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"a":"' + "[" * 1000 + '\\"{{{","b":["]]]]"]}'

    assert loads(text.encode()) == {"a": "[" * 1000 + '"{{{', "b": ["]]]]"]}


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"status":"\\ud800"}', "status"),
        (b'{"a":{"b":["x","\\udfff"]}}', "a.b[1]"),
        (b'{"\\udc00":1}', "<key>"),
        (b'"\\ud800"', "(top level)"),
        (b'{"s":"\\ud800\\u0041"}', "s"),  # a high surrogate followed by a non-surrogate escape
    ],
)
def test_a_lone_surrogate_escape_is_refused_and_located(raw: bytes, where: str) -> None:
    with pytest.raises(UnsafeJson, match=rf"at {re.escape(where)} leaves a lone surrogate"):
        loads(raw)


def test_a_surrogate_pair_escape_is_one_character() -> None:
    assert loads(b'{"s":"\\ud83d\\ude00"}') == {"s": "\U0001f600"}


def test_an_escaped_backslash_before_u_is_not_an_escape() -> None:
    assert loads(b'{"s":"\\\\ud800"}') == {"s": "\\ud800"}


@pytest.mark.parametrize("raw", [b'{"a":"\xff"}', b"\xef\xbb\xbf{}", '{"a":1}'.encode("utf-16")])
def test_bytes_that_are_not_plain_utf8_are_refused(raw: bytes) -> None:
    with pytest.raises(JsonRefused):
        loads(raw)


def test_str_holding_a_raw_surrogate_is_refused() -> None:
    with pytest.raises(UnsafeJson):
        loads('{"a":"\ud800"}')


@pytest.mark.parametrize("raw", [b"NaN", b'{"a":Infinity}', b"[-Infinity]", b"{", b"", b"1 2"])
def test_what_is_not_json_is_refused_as_a_value_error(raw: bytes) -> None:
    with pytest.raises(JsonRefused):
        loads(raw)

    assert issubclass(JsonRefused, ValueError)  # callers' existing "unreadable" handlers still hold


def test_an_integer_beyond_the_digit_limit_is_refused_not_a_crash() -> None:
    with pytest.raises(JsonRefused):
        loads(b"[" + b"9" * 5000 + b"]")
