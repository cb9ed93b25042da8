"""Go-compatible canonical JSON and HMAC signing, checked against the Go-generated vectors.

Needs no Django and no database: run with ``--noconftest`` if the project's
conftest cannot be imported. The vectors are a copy of the shared protocol folder's
``protocol/vectors/hmac_vectors.json`` (kept identical by a test when that folder is beside the repository).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from provision.canonical_json import (
    MAX_NESTING_DEPTH,
    CanonicalJsonError,
    GoNilMap,
    TimestampError,
    canonicalize,
    go_dumps,
    go_loads,
    go_parse_float,
    go_parse_query,
    normalize_timestamp,
    query_payload,
)
from provision.signing import sign, signed_body, verify, verify_body

# The Go-generated vectors, vendored so that they run wherever the repository is checked out; the shared
# protocol folder beside the repository, when present, must hold the very same file.
VECTORS_PATH = Path(__file__).resolve().parent / "vectors" / "hmac_vectors.json"
SHARED_VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared/protocol/vectors/hmac_vectors.json"
_MISSING = f"HMAC vectors file not found at {VECTORS_PATH}"


def _load_vectors() -> dict[str, Any] | None:
    if not VECTORS_PATH.is_file():
        return None
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return data


@pytest.mark.skipif(
    not SHARED_VECTORS_PATH.is_file(), reason="no shared/ protocol folder beside the repository"
)
def test_the_vendored_vectors_are_the_shared_protocol_vectors() -> None:
    assert VECTORS_PATH.read_bytes() == SHARED_VECTORS_PATH.read_bytes()


_VECTORS = _load_vectors()


def _params(section: str, modes: tuple[str, ...] = ("body", "body_ts", "query", "raw")) -> list[Any]:
    if _VECTORS is None:
        return [pytest.param(None, id="vectors-missing", marks=pytest.mark.skip(reason=_MISSING))]
    return [pytest.param(entry, id=entry["name"]) for entry in _VECTORS[section] if entry["mode"] in modes]


def _signed_bytes(vector: dict[str, Any]) -> bytes:
    """The message the aggregator signs for this vector, computed from its body or query."""
    mode = vector["mode"]
    body = bytes.fromhex(vector["body_hex"])
    if mode == "body":
        return canonicalize(body)
    if mode == "body_ts":
        return go_dumps(normalize_timestamp(go_loads(body)))
    if mode == "query":
        return go_dumps(query_payload(go_parse_query(vector["query"]), None))
    if mode == "raw":
        return body
    raise AssertionError(f"unknown vector mode {mode!r}")


# ---------------------------------------------------------------------------
# Every vector of the shared file
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", _params("vectors"))
def test_vector_canonical_bytes_and_signature(vector: dict[str, Any]) -> None:
    expected = bytes.fromhex(vector["canonical_hex"])
    message = _signed_bytes(vector)
    assert message == expected
    assert sign(vector["secret"], message) == vector["signature"]
    assert verify([vector["secret"]], message, vector["signature"])


@pytest.mark.parametrize("vector", _params("vectors", modes=("body", "raw")))
def test_vector_signature_accepted_by_verify_body(vector: dict[str, Any]) -> None:
    body = bytes.fromhex(vector["body_hex"])
    assert verify_body([vector["secret"]], body, vector["signature"])
    assert not verify_body([vector["secret"] + "x"], body, vector["signature"])


@pytest.mark.parametrize("vector", _params("vectors", modes=("body", "body_ts", "query")))
def test_vector_canonical_form_is_a_fixed_point(vector: dict[str, Any]) -> None:
    canonical = bytes.fromhex(vector["canonical_hex"])
    assert canonicalize(canonical) == canonical


@pytest.mark.parametrize("rejected", _params("rejected_bodies"))
def test_rejected_body_is_refused(rejected: dict[str, Any]) -> None:
    with pytest.raises(CanonicalJsonError):
        go_loads(bytes.fromhex(rejected["body_hex"]))


@pytest.mark.parametrize("rejected", _params("rejected_bodies"))
def test_rejected_body_error_text_is_gos(rejected: dict[str, Any]) -> None:
    with pytest.raises(CanonicalJsonError) as excinfo:
        go_loads(bytes.fromhex(rejected["body_hex"]))
    assert str(excinfo.value) == rejected["error"]


# ---------------------------------------------------------------------------
# Encoding: strings
# ---------------------------------------------------------------------------


def test_non_ascii_names_stay_raw_utf8() -> None:
    assert go_dumps({"accountName": "Adébáyọ̀ Ọlá"}) == '{"accountName":"Adébáyọ̀ Ọlá"}'.encode()


def test_html_characters_are_escaped_in_values_and_keys() -> None:
    assert go_dumps({"a<b": "x > y & z"}) == rb'{"a\u003cb":"x \u003e y \u0026 z"}'


def test_line_and_paragraph_separators_are_escaped() -> None:
    assert go_dumps(["a\u2028b\u2029c"]) == rb'["a\u2028b\u2029c"]'


def test_control_characters_use_go_escapes() -> None:
    text = 'q" b\\ \n\r\t\b\f \x00\x01\x1f \x7f'
    assert go_dumps([text]) == b'["q\\" b\\\\ \\n\\r\\t\\b\\f \\u0000\\u0001\\u001f \x7f"]'


def test_slash_and_astral_characters_are_written_raw() -> None:
    assert go_dumps(["a/b \U0001f4b8"]) == '["a/b \U0001f4b8"]'.encode()


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(CanonicalJsonError):
        go_dumps({"memo": "bad \ud800"})


# ---------------------------------------------------------------------------
# Encoding: structure
# ---------------------------------------------------------------------------


def test_keys_are_sorted_by_utf8_bytes_at_every_depth() -> None:
    payload = {"z": 1, "é": 2, "A": 3, "a": {"y": [{"b": 1, "a": 2}], "x": None}, "_": True}
    assert go_dumps(payload) == '{"A":3,"_":true,"a":{"x":null,"y":[{"a":2,"b":1}]},"z":1,"é":2}'.encode()


def test_arrays_keep_order_and_tuples_are_arrays() -> None:
    assert (
        go_dumps({"l": [3, 1, 2], "t": ("b", "a"), "e": [], "o": {}})
        == b'{"e":[],"l":[3,1,2],"o":{},"t":["b","a"]}'
    )


def test_nil_map_from_null_marshals_as_null() -> None:
    decoded = go_loads(b" null ")
    assert decoded == {}
    assert isinstance(decoded, GoNilMap)
    assert go_dumps(decoded) == b"null"
    assert canonicalize(b"null") == b"null"
    assert go_dumps({}) == b"{}"


def test_cycles_are_refused() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(CanonicalJsonError):
        go_dumps(loop)


def test_same_object_twice_is_not_a_cycle() -> None:
    shared = {"k": "v"}
    assert go_dumps({"a": shared, "b": [shared, shared]}) == b'{"a":{"k":"v"},"b":[{"k":"v"},{"k":"v"}]}'


@pytest.mark.parametrize(
    "value",
    [b"bytes", {1, 2}, object(), {1: "int key"}],
    ids=["bytes", "set", "object", "int-key"],
)
def test_unsupported_values_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        go_dumps({"v": value})


# ---------------------------------------------------------------------------
# Encoding: numbers (aggregator.md C.2)
# ---------------------------------------------------------------------------

GO_FLOATS = [
    (1.0, "1"),
    (736.155, "736.155"),
    (0.1, "0.1"),
    (12.5, "12.5"),
    (-0.325, "-0.325"),
    (100.0, "100"),
    (1e16, "10000000000000000"),
    (1e20, "100000000000000000000"),
    (9.999999999999999e20, "999999999999999900000"),
    (1e21, "1e+21"),
    (1e100, "1e+100"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (0.000001, "0.000001"),
    (0.00001, "0.00001"),
    (1e-7, "1e-7"),
    (-1.5e-7, "-1.5e-7"),
    (1.5e-10, "1.5e-10"),
    (1.2345e-100, "1.2345e-100"),
    (5e-324, "5e-324"),
    (123456789012345678.0, "123456789012345680"),
    (1728201600.5, "1728201600.5"),
    (0.0, "0"),
    (-0.0, "-0"),
]


@pytest.mark.parametrize(("value", "expected"), GO_FLOATS, ids=[text for _, text in GO_FLOATS])
def test_floats_are_formatted_the_go_way(value: float, expected: str) -> None:
    assert go_dumps([value]) == f"[{expected}]".encode()


def _reference_layout(value: float) -> str:
    """An independent statement of Go's rule: shortest digits, plain in [1e-6, 1e21)."""
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits = Decimal(repr(value)).normalize()
    return format(digits, "e" if abs(value) < 1e-6 or abs(value) >= 1e21 else "f")


def test_float_layout_matches_the_rule_for_many_doubles() -> None:
    checked = 0
    for counter in range(20000):
        block = hashlib.sha256(counter.to_bytes(8, "big")).digest()
        value = struct.unpack("<d", block[:8])[0]
        if counter % 2:  # also cover the plain-notation range densely
            value = int.from_bytes(block[8:14], "big") / 10 ** (block[14] % 14)
        if not math.isfinite(value):
            continue
        text = go_dumps([value])[1:-1].decode()
        assert text == _reference_layout(value), value
        assert float(text) == value
        checked += 1
    assert checked > 19000


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(value: float) -> None:
    with pytest.raises(CanonicalJsonError):
        go_dumps({"amount": value})


def test_small_ints_are_written_as_integers() -> None:
    assert go_dumps({"n": 2**53 - 1, "m": -(2**53 - 1), "z": 0, "t": 1728201600}) == (
        b'{"m":-9007199254740991,"n":9007199254740991,"t":1728201600,"z":0}'
    )


@pytest.mark.parametrize("value", [2**53, -(2**53), 123456789012345678, 10**30])
def test_big_ints_are_refused(value: int) -> None:
    with pytest.raises(CanonicalJsonError, match="string"):
        go_dumps({"amount": value})


def test_bool_is_not_treated_as_int() -> None:
    assert go_dumps({"ok": True, "no": False}) == b'{"no":false,"ok":true}'


def test_decimal_is_refused() -> None:
    with pytest.raises(CanonicalJsonError, match="string"):
        go_dumps({"amount": Decimal("736.15")})


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


def test_every_number_decodes_to_float() -> None:
    decoded = go_loads(b'{"i":736,"f":1.50,"e":1E2,"n":[-0,1e-400]}')
    assert decoded == {"i": 736.0, "f": 1.5, "e": 100.0, "n": [0.0, 0.0]}
    assert all(type(v) is float for v in (decoded["i"], decoded["f"], decoded["e"], *decoded["n"]))
    assert math.copysign(1.0, decoded["n"][0]) == -1.0  # -0 stays negative zero


def test_repeated_key_keeps_last_value() -> None:
    assert go_loads(b'{"a":1,"b":2,"a":{"x":3}}') == {"a": {"x": 3.0}, "b": 2.0}


def test_surrogate_escapes() -> None:
    decoded = go_loads(rb'{"pair":"\ud83d\udcb8","lone":"\ud800x","low":"\udc00","two":"\ud800\ud83c\udf55"}')
    assert decoded == {"pair": "\U0001f4b8", "lone": "\ufffdx", "low": "\ufffd", "two": "\ufffd\U0001f355"}


def test_each_invalid_utf8_byte_becomes_one_replacement_character() -> None:
    decoded = go_loads(b'{"m":"caf\xe9 \xe2\x82 \xed\xa0\x80 \xf0\x9f\x92\xb8"}')
    assert decoded == {"m": "caf\ufffd \ufffd\ufffd \ufffd\ufffd\ufffd \U0001f4b8"}


def test_keys_are_decoded_like_values_before_deduplication() -> None:
    assert go_loads(rb'{"\ud800":1,"\udc00":2}') == {"\ufffd": 2.0}


def test_nesting_up_to_go_limit_is_accepted_and_beyond_is_refused() -> None:
    depth = MAX_NESTING_DEPTH - 1  # the top-level object is one level
    body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    assert canonicalize(body) == body
    too_deep = b'{"a":' + b"[" * (depth + 1) + b"]" * (depth + 1) + b"}"
    with pytest.raises(CanonicalJsonError, match="exceeded max depth"):
        go_loads(too_deep)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b"  ", "unexpected end of JSON input"),
        (b'{"a":"x', "unexpected end of JSON input"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        (b'{"a":[1,]}', "invalid character ']' looking for beginning of value"),
        (b'{"a":[1 2]}', "invalid character '2' after array element"),
        (b'{"a":01}', "invalid character '1' after object key:value pair"),
        (b'{"a":-x}', "invalid character 'x' in numeric literal"),
        (b'{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
        (b'{"a":1e+}', "invalid character '}' in exponent of numeric literal"),
        (b'{"a":tru}', "invalid character '}' in literal true (expecting 'e')"),
        (b'{"a":"\\x"}', "invalid character 'x' in string escape code"),
        (b'{"a":"\\u12g4"}', "invalid character 'g' in \\u hexadecimal character escape"),
        (b'{"a":Infinity}', "invalid character 'I' looking for beginning of value"),
        (b'{"a":1}}', "invalid character '}' after top-level value"),
        (b'{"a":"\x00"}', "invalid character '\\x00' in string literal"),
        (b"\xef\xbb\xbf{}", "invalid character 'ï' looking for beginning of value"),
        (b"1.", "invalid character ' ' after decimal point in numeric literal"),
        (b"[1e400]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
        (b"1e400", "json: cannot unmarshal number into Go value of type map[string]interface {}"),
        (b"true", "json: cannot unmarshal bool into Go value of type map[string]interface {}"),
        (b'{"a":[1e400],"b":-1e999}', "json: cannot unmarshal number 1e400 into Go value of type float64"),
        (b'{"a":1e400,"b":x}', "invalid character 'x' looking for beginning of value"),
    ],
)
def test_go_error_texts(body: bytes, message: str) -> None:
    with pytest.raises(CanonicalJsonError) as excinfo:
        go_loads(body)
    assert str(excinfo.value) == message


def test_go_loads_agrees_with_stdlib_on_plain_documents() -> None:
    document = {
        "orderId": "ea0f8d79-3153-5001-a308-2a828b25015b",
        "amount": "736",
        "nested": {"list": [1, 2.5, None, True, False, "x", {"é": "ü"}], "empty": {}},
    }
    for text in (
        json.dumps(document),
        json.dumps(document, indent=2),
        json.dumps(document, ensure_ascii=False),
    ):
        decoded = go_loads(text.encode())
        assert decoded == json.loads(text, parse_int=float)


def test_go_loads_takes_bytes() -> None:
    with pytest.raises(TypeError):
        go_loads('{"a":1}')  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Timestamps and GET payloads (aggregator.md A4.1 checks 6-7, C.3)
# ---------------------------------------------------------------------------


def test_string_timestamp_is_signed_as_a_number() -> None:
    payload = normalize_timestamp({"reason": "PSP timeout", "timestamp": "1728201600"})
    assert payload == {"reason": "PSP timeout", "timestamp": 1728201600.0}
    assert go_dumps(payload) == b'{"reason":"PSP timeout","timestamp":1728201600}'


def test_numeric_timestamps_pass_unchanged() -> None:
    assert normalize_timestamp({"timestamp": 1728201600}) == {"timestamp": 1728201600}
    assert normalize_timestamp({"timestamp": 1728201600.5}) == {"timestamp": 1728201600.5}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        GoNilMap(),
        {"timestamp": None},
        {"timestamp": 0},
        {"timestamp": 0.0},
        {"timestamp": "0"},
        {"timestamp": True},
        {"timestamp": [1728201600]},
        {"timestamp": " 1728201600"},
        {"timestamp": "1728201600s"},
        {"timestamp": ""},
        {"timestamp": "NaN"},
        {"timestamp": "inf"},
        {"timestamp": "1e400"},
        {"timestamp": "1e-400"},
    ],
    ids=repr,
)
def test_invalid_timestamps_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(TimestampError):
        normalize_timestamp(payload)


# A selection of Go's own strconv ParseFloat test table (atof_test.go).
GO_PARSE_FLOAT = [
    ("1", 1.0),
    ("+1", 1.0),
    ("1e23", 1e23),
    ("-0", -0.0),
    ("625e-3", 0.625),
    (".5", 0.5),
    ("1.", 1.0),
    ("0x1p-2", 0.25),
    ("0x1fFe2.p0", 131042.0),
    ("-0x1_ep-1", -15.0),
    ("0x.1p-2", 0.015625),
    ("1_23.50_0_0e+1_2", 1.235e14),
    ("0x_1_2.3_4_5p+1_2", 74565.0),
    ("1e-400000", 0.0),
    ("0e+01234567890123456789", 0.0),
    ("2.2250738585072012e-308", 2.2250738585072014e-308),
    ("1090544144181609348671888949248", 1.0905441441816093e30),
    ("1.00000000000000011102230246251565404236316680908203125", 1.0),
]

GO_PARSE_FLOAT_ERRORS = [
    "",
    "1x",
    "1.1.",
    "1e",
    "1e-",
    ".e-1",
    "1\x00.2",
    "0x",
    "0x1",
    "0x1e2",
    "1p2",
    "0x1p+",
    "_123.5e+12",
    "1__23.5e+12",
    "123_.5e+12",
    "123._5e+12",
    "123.5e+12_",
    "0x12.345p_+12",
    "+nan",
    "infinit",
    " 1",
    "1 ",
    "\u0661",  # an Arabic-Indic digit: Python float() would take it
    "1e400",
    "0x1p1024",
    "1.797693134862315808e308",
]


@pytest.mark.parametrize(("text", "expected"), GO_PARSE_FLOAT)
def test_go_parse_float_accepts_go_syntax(text: str, expected: float) -> None:
    value = go_parse_float(text)
    assert value == expected
    assert math.copysign(1.0, value) == math.copysign(1.0, expected)


@pytest.mark.parametrize("text", GO_PARSE_FLOAT_ERRORS)
def test_go_parse_float_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(CanonicalJsonError):
        go_parse_float(text)


def test_go_parse_float_specials_are_returned_like_go() -> None:
    assert math.isnan(go_parse_float("NaN"))
    assert go_parse_float("-Infinity") == -math.inf
    assert go_parse_float("+INF") == math.inf


def test_query_payload_signs_first_values_as_strings_with_numeric_timestamp() -> None:
    payload = query_payload({"currency": ["NGN", "KES"], "page": "1", "empty": []}, 1728201600)
    assert go_dumps(payload) == b'{"currency":"NGN","page":"1","timestamp":1728201600}'


def test_query_payload_timestamp_from_the_query_string() -> None:
    params = go_parse_query("note=a%26b%3Cc+d&timestamp=1728201600")
    assert go_dumps(query_payload(params, None)) == rb'{"note":"a\u0026b\u003cc d","timestamp":1728201600}'


def test_query_payload_requires_a_timestamp() -> None:
    with pytest.raises(TimestampError):
        query_payload({"currency": "NGN"}, None)


def test_query_payload_reads_multivalue_dicts_through_getlist() -> None:
    class MultiValue(dict[str, str]):
        """Like Django's QueryDict: item access gives the *last* value."""

        def __init__(self, lists: dict[str, list[str]]) -> None:
            super().__init__({key: values[-1] for key, values in lists.items()})
            self.lists = lists

        def getlist(self, key: str) -> list[str]:
            return self.lists[key]

    params = MultiValue({"currency": ["NGN", "KES"], "timestamp": ["1728201600"]})
    assert query_payload(params, None) == {"currency": "NGN", "timestamp": 1728201600.0}


def test_go_parse_query_follows_url_parse_query() -> None:
    parsed = go_parse_query("a=1&a=2&&b&c=x+y%21&bad=%zz&semi=1;x=2&=v&d=%E2%82%AC")
    assert parsed == {"a": ["1", "2"], "b": [""], "c": ["x y!"], "": ["v"], "d": ["€"]}


# ---------------------------------------------------------------------------
# Signing
# ---------------------------------------------------------------------------

SECRET = "E8U4m3tmfP2DIlnFUAa-0dBpUcU-t9WmQByKOqBGPjw="
OLD_SECRET = "old-secret-kept-during-rotation"


def test_sign_uses_the_secret_text_as_key_and_lowercase_hex() -> None:
    message = b'{"timestamp":1728201600}'
    signature = sign(SECRET, message)
    assert signature == hmac.new(SECRET.encode("utf-8"), message, hashlib.sha256).hexdigest()
    assert signature != hmac.new(base64.urlsafe_b64decode(SECRET), message, hashlib.sha256).hexdigest()
    assert signature == signature.lower()
    assert len(signature) == 64
    assert sign("clé-ü", message) == hmac.new("clé-ü".encode(), message, hashlib.sha256).hexdigest()


def test_verify_accepts_the_previous_secret_during_rotation() -> None:
    message = b'{"timestamp":1728201600}'
    assert verify([SECRET, OLD_SECRET], message, sign(OLD_SECRET, message))
    assert verify([SECRET, OLD_SECRET], message, sign(SECRET, message))


def test_verify_rejects_a_wrong_secret_or_signature() -> None:
    message = b'{"timestamp":1728201600}'
    good = sign(SECRET, message)
    assert not verify([SECRET, OLD_SECRET], message, sign("someone-else", message))
    assert not verify([SECRET], message + b" ", good)
    assert not verify([SECRET], message, good.upper())
    assert not verify([SECRET], message, "")
    assert not verify([SECRET], message, "ü")
    assert not verify([], message, good)
    assert not verify([""], message, sign("", message))


def test_verify_refuses_a_bare_string_of_candidates() -> None:
    with pytest.raises(TypeError):
        verify(SECRET, b"{}", sign(SECRET, b"{}"))


def test_signed_body_is_canonical_and_includes_the_timestamp() -> None:
    body, signature = signed_body(
        SECRET, {"validationStatus": "pending", "txId": "LNC-7f3a9c", "psp": "lenco"}, timestamp=1728201600
    )
    assert body == b'{"psp":"lenco","timestamp":1728201600,"txId":"LNC-7f3a9c","validationStatus":"pending"}'
    assert signature == sign(SECRET, body)
    assert canonicalize(body) == body  # what the fork re-marshals equals what upstream sees raw


def test_signed_body_refuses_bad_timestamps() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        signed_body(SECRET, {"timestamp": 1}, timestamp=1728201600)
    with pytest.raises(ValueError, match="timestamp"):
        signed_body(SECRET, {}, timestamp=0)
    with pytest.raises(TypeError):
        signed_body(SECRET, {}, timestamp=1728201600.0)  # type: ignore[arg-type]


def test_verify_body_accepts_a_signature_over_the_canonical_form_of_a_pretty_body() -> None:
    pretty = b'{\n  "timestamp": 1728201600,\n  "reason": "PSP timeout"\n}\n'
    canonical_signature = sign(SECRET, b'{"reason":"PSP timeout","timestamp":1728201600}')
    assert verify_body([SECRET], pretty, canonical_signature)
    assert verify_body([OLD_SECRET, SECRET], pretty, canonical_signature)
    assert verify_body([SECRET], pretty, sign(SECRET, pretty))  # the raw form too
    assert not verify_body([OLD_SECRET], pretty, canonical_signature)


def test_verify_body_on_non_json_only_accepts_the_raw_form() -> None:
    body = b"not json"
    assert verify_body([SECRET], body, sign(SECRET, body))
    assert not verify_body([SECRET], body, sign(SECRET, b"null"))


def test_verify_body_can_coerce_a_string_timestamp_like_the_middleware() -> None:
    body = b'{"reason":"PSP timeout","timestamp":"1728201600"}'
    go_signature = sign(SECRET, b'{"reason":"PSP timeout","timestamp":1728201600}')
    assert not verify_body([SECRET], body, go_signature)
    assert verify_body([SECRET], body, go_signature, coerce_timestamp=True)
