"""Airtel Money markets: the ``X-Country``/``X-Currency`` pair, the dialling code, and what each country's
configuration says (protocol/airtel-money.md sections 1, 3, 4 and 5).

The country of an order is found from its institution code (``AIRT<country>PC``, the aggregator's codes:
``AIRTKEPC``, ``AIRTUGPC``, ``AIRTTZPC``...) and checked against its currency; the country of a read by
reference (which carries only the currency) from the currency, which is why two enabled countries may not
share one (``AirtelConfig`` refuses it).

Ghana (``AIRTGHPC``) is deliberately absent: Airtel Ghana became AirtelTigo/AT, which is not an Airtel
Africa Open API market (UNCONFIRMED that this API can pay Ghanaian numbers at all: route GHS elsewhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from psp.base import FailureReason, PspRejected

NAME = "airtel"

# X-Country -> (X-Currency, international dialling code). Sources: protocol section 1 [sdk, 3rd].
MARKETS: dict[str, tuple[str, str]] = {
    "KE": ("KES", "254"),
    "UG": ("UGX", "256"),
    "TZ": ("TZS", "255"),
    "MW": ("MWK", "265"),
    "ZM": ("ZMW", "260"),
    "RW": ("RWF", "250"),
    "NG": ("NGN", "234"),
    "MG": ("MGA", "261"),
    "SC": ("SCR", "248"),
    "TD": ("XAF", "235"),
    "GA": ("XAF", "241"),
    "CG": ("XAF", "242"),
    "NE": ("XOF", "227"),
}

# RSA paddings Airtel's transcriptions and SDKs use (UNCONFIRMED which a country expects; see the package
# docstring): PKCS#1 v1.5 (the v1 key, the 121 platform); OAEP with SHA-1 (PHP's OPENSSL_PKCS1_OAEP_PADDING,
# the laravel SDK); OAEP with SHA-256 and MGF1-SHA-256; and Java's "OAEPWithSHA-256AndMGF1Padding", whose
# default parameters are SHA-256 for the digest and SHA-1 for MGF1 (what Airtel's "Encryption 2.0" text
# names, read as a Java server would).
RSA_PADDINGS = ("pkcs1v15", "oaep-sha1", "oaep-sha256", "oaep-sha256-mgf1-sha1")
SIGNING_CHOICES = ("off", *RSA_PADDINGS)  # off, or on with that padding for x-key
API_VERSIONS = ("v1", "v2", "v3")
BALANCE_APIS = ("v1", "v2", "off")
_PHONE_NOISE = re.compile(r"[\s\-().]")


def institution_code(country: str) -> str:
    return f"AIRT{country}PC"


@dataclass(frozen=True)
class CountryConfig:
    """How the node pays Airtel wallets in one country (every field is a per-country setting)."""

    country: str  # X-Country, ISO 3166 alpha-2
    base_url: str  # the pan-African host or the country's own host
    pin: str = field(repr=False)  # the disbursement wallet's PIN, in clear; encrypted once per process
    pin_padding: str = "pkcs1v15"  # one of RSA_PADDINGS
    pin_public_key: str = field(default="", repr=False)  # base64 DER or PEM; "": GET /v1/rsa/encryption-keys
    signing: str = "off"  # message signing (x-signature/x-key): off, or the padding of x-key
    signing_public_key: str = field(default="", repr=False)  # as pin_public_key
    version: str = "v2"  # of POST /standard/<version>/disbursements: v1, v2 or v3
    msisdn_length: int = 9  # digits of the national number without country code or trunk 0
    msisdn_leading_zero: bool = False  # send the national number as 0XXXXXXXXX (ESB000036 countries)
    amount_decimals: int = 0  # decimals Airtel takes in this country's amounts; more is refused here
    balance: str = "v1"  # GET /standard/v1/users/balance, v2 ?type=DISB, or off (no balance API)
    institutions: frozenset[str] = frozenset()  # empty: AIRT<country>PC

    def __post_init__(self) -> None:
        if self.country not in MARKETS:
            raise ValueError(f"airtel: no Airtel Money market {self.country!r} (known: {', '.join(MARKETS)})")
        if not (self.pin.isascii() and self.pin.isdigit()):
            raise ValueError(f"airtel: the PIN for {self.country} must be digits")
        for name, value, choices in (
            ("PIN encryption", self.pin_padding, RSA_PADDINGS),
            ("signing", self.signing, SIGNING_CHOICES),
            ("disbursement version", self.version, API_VERSIONS),
            ("balance API", self.balance, BALANCE_APIS),
        ):
            if value not in choices:
                raise ValueError(f"airtel: {name} {value!r} for {self.country} is not one of {choices}")
        if not 1 <= self.msisdn_length <= 15 or not 0 <= self.amount_decimals <= 3:
            raise ValueError(f"airtel: MSISDN length or amount decimals out of range for {self.country}")

    @property
    def currency(self) -> str:
        return MARKETS[self.country][0]

    @property
    def dialling_code(self) -> str:
        return MARKETS[self.country][1]

    def serves(self, institution: str) -> bool:
        return institution.upper() in (self.institutions or {institution_code(self.country)})

    def msisdn(self, raw: str) -> str:
        """The wallet number as Airtel wants it in the body: national, no country code ("Do not send
        country code in msisdn"), ``msisdn_length`` digits, with a leading 0 where the country wants one.

        Accepts ``+256752604392``, ``256752604392``, ``00256…``, ``0752604392`` and ``752604392``.
        Raises PspRejected(RECIPIENT_INVALID) for anything else.
        """
        digits = _PHONE_NOISE.sub("", raw)
        if digits.startswith("+"):
            digits = digits[1:]
        elif digits.startswith("00"):
            digits = digits[2:]
        length, code = self.msisdn_length, self.dialling_code
        national = ""
        if digits.isascii() and digits.isdigit():
            if len(digits) == len(code) + length and digits.startswith(code):
                national = digits[len(code) :]
            elif len(digits) == length + 1 and digits.startswith("0"):
                national = digits[1:]
            elif len(digits) == length:
                national = digits
        if not national or national.startswith("0"):
            raise PspRejected(
                f"not a {self.country} Airtel number ({length} digits after {code} or 0)",
                psp=NAME,
                reason=FailureReason.RECIPIENT_INVALID,
            )
        return "0" + national if self.msisdn_leading_zero else national

    def wire_amount(self, amount: Decimal) -> Decimal:
        """The amount as sent (major units, at most ``amount_decimals`` decimals). Money is never rounded
        here: an amount with more decimals is refused before anything is sent (Airtel's decimals per
        country are UNCONFIRMED; it might truncate what it does not take)."""
        try:
            if not amount.is_finite() or amount <= 0:
                raise PspRejected("amount must be a positive number", psp=NAME, reason=FailureReason.OTHER)
            quantized = amount.quantize(Decimal(1).scaleb(-self.amount_decimals))
        except InvalidOperation:
            raise PspRejected("amount out of range", psp=NAME, reason=FailureReason.OTHER) from None
        if quantized != amount:
            raise PspRejected(
                f"airtel takes at most {self.amount_decimals} decimals in {self.currency}",
                psp=NAME,
                reason=FailureReason.UNSUPPORTED,
            )
        return quantized
