"""Airtel's cryptography: the encrypted PIN, message signing (``x-signature``/``x-key``) and the HMAC of
authenticated callbacks (protocol/airtel-money.md sections 5, 6 and 10). Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from psp.clients import http

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(parse_float=Decimal)


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM, or from base64 DER (SubjectPublicKeyInfo, as Airtel publishes it:
    ``MIGfMA0…``, or a bare PKCS#1 key). Raises ValueError."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode("ascii"))
    else:
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
        except ValueError:
            raise ValueError("not base64") from None
        key = serialization.load_der_public_key(der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def _rsa_padding(name: str) -> padding.AsymmetricPadding:
    if name == "pkcs1v15":
        return padding.PKCS1v15()
    digest: hashes.HashAlgorithm
    mgf_digest: hashes.HashAlgorithm
    if name == "oaep-sha1":
        digest, mgf_digest = hashes.SHA1(), hashes.SHA1()  # noqa: S303 - the padding Airtel decrypts, not a signature
    elif name == "oaep-sha256":
        digest, mgf_digest = hashes.SHA256(), hashes.SHA256()
    elif name == "oaep-sha256-mgf1-sha1":
        digest, mgf_digest = hashes.SHA256(), hashes.SHA1()  # noqa: S303
    else:
        raise ValueError(f"unknown RSA padding {name!r}")
    return padding.OAEP(mgf=padding.MGF1(algorithm=mgf_digest), algorithm=digest, label=None)


def rsa_encrypt(key: rsa.RSAPublicKey, plaintext: bytes, padding_name: str) -> str:
    """Base64 of the RSA ciphertext (randomised: two calls give different texts that decrypt alike)."""
    return base64.b64encode(key.encrypt(plaintext, _rsa_padding(padding_name))).decode("ascii")


def aes_signature(body: bytes, *, key: bytes, iv: bytes) -> str:
    """``x-signature``: base64 of AES-256-CBC/PKCS#7 over the exact body bytes."""
    padder = symmetric_padding.PKCS7(128).padder()
    padded = padder.update(body) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def sign_body(body: bytes, *, public_key: rsa.RSAPublicKey, padding_name: str) -> dict[str, str]:
    """The ``x-signature`` and ``x-key`` headers for ``body`` (a fresh AES key and IV per request)."""
    key, iv = os.urandom(32), os.urandom(16)
    key_and_iv = f"{base64.b64encode(key).decode()}:{base64.b64encode(iv).decode()}".encode("ascii")
    return {
        "x-signature": aes_signature(body, key=key, iv=iv),
        "x-key": rsa_encrypt(public_key, key_and_iv, padding_name),
    }


def callback_hash(message: bytes, *, secret: str) -> str:
    """Base64 HMAC-SHA256 of ``message`` keyed with the callback private key's text."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode()


def member_texts(text: str) -> dict[str, str]:
    """The members of a JSON object text, each as the exact text of its value (how it came on the wire).
    Raises ValueError when ``text`` is not one JSON object."""
    index = _WHITESPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[index : index + 1] != "{":
        raise ValueError("not a JSON object")
    index = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    members: dict[str, str] = {}
    if text[index : index + 1] == "}":
        return members
    while True:
        key, index = _DECODER.raw_decode(text, index)
        if not isinstance(key, str):
            raise ValueError("a member name must be a string")
        index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
        if text[index : index + 1] != ":":
            raise ValueError("':' expected")
        start = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
        _value, end = _DECODER.raw_decode(text, start)
        members[key] = text[start:end]
        index = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
        separator = text[index : index + 1]
        if separator == "}":
            return members
        if separator != ",":
            raise ValueError("',' or '}' expected")
        index = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]


def callback_hash_messages(body: bytes, payload: Mapping[str, object], *, hash_in_body: bool) -> list[bytes]:
    """Every text Airtel may have hashed (its canonical string is UNCONFIRMED, protocol section 10):

    * the ``transaction`` object exactly as it came on the wire;
    * the ``transaction`` object serialised compactly (how integrators re-serialise it);
    * ``{"transaction": {...}}`` compactly, i.e. the body without ``hash`` (the Java sample);
    * the raw body itself, when the hash came in a header rather than in the body.
    """
    messages: list[bytes] = []
    transaction = payload.get("transaction")
    try:
        raw_transaction = member_texts(body.decode("utf-8")).get("transaction")
    except (UnicodeDecodeError, ValueError):
        raw_transaction = None
    if raw_transaction is not None:
        messages.append(raw_transaction.encode("utf-8"))
    if isinstance(transaction, Mapping):
        messages.append(http.dumps(transaction).encode("utf-8"))
        without_hash = {key: value for key, value in payload.items() if key != "hash"}
        messages.append(http.dumps(without_hash).encode("utf-8"))
    if not hash_in_body:
        messages.append(body)
    return list(dict.fromkeys(messages))


def callback_hash_matches(given: str, messages: list[bytes], *, secret: str) -> bool:
    """Whether ``given`` is the HMAC of one of ``messages`` (constant-time per comparison)."""
    matched = False
    for message in messages:
        matched |= hmac.compare_digest(callback_hash(message, secret=secret).encode(), given.strip().encode())
    return matched
