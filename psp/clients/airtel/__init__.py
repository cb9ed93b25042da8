"""Airtel Money Open API, Disbursement: payouts to Airtel wallets (KES, UGX, TZS, MWK, ...).

Contract: ``protocol/airtel-money.md``. What this adapter decides where the document leaves room:

* **Countries.** Each enabled country (``AIRTEL_COUNTRIES``) has its own settings
  (``countries.CountryConfig``: host, PIN and its RSA padding and key, message signing, API version,
  MSISDN format, amount decimals, balance API). An order's country comes from its institution
  (``AIRT<country>PC``) and must agree with its currency; ``X-Country``/``X-Currency`` are set from it.
* **References.** ``transaction.id`` (Airtel's idempotency key) is ``make_reference``'s derivation of the
  order id and attempt, letters and digits only; ``reference`` carries the same text.
* **Answers.** Classified on the body's codes (``codes``), never on HTTP 200 alone: success needs
  ``DP00900001001`` + ``TS``; duplicate codes are resolved here by an enquiry by our id (as Lenco and MTN
  do; DuplicateReference when the enquiry shows nothing yet); refusal codes are PspRejected; ambiguous,
  unknown and contradictory answers are PspUnavailable, so the node reads the payout by its id before any
  re-send, which carries the same id.
* **Token.** One per host (the pan-African host, or a country's own host where configured) per adapter
  instance, behind a lock, fetched again 30 s before its 180 s run out (``clock`` injected); an
  ``invalid_token`` answer drops it and repeats the call once.
* **PIN and signing.** The PIN is RSA-encrypted once per country and process and reused; the key comes
  from settings or from ``GET /v1/rsa/encryption-keys``. Signing (``x-signature``/``x-key``) is per
  country, over the exact body bytes sent.
* **Callbacks** make the transfer due for an enquiry and nothing more (``AirtelAdapter.parse_webhook``).

UNCONFIRMED points of the protocol and how they are handled (both answers work, or fail safe):

* API version per country: ``AIRTEL_DISBURSEMENT_VERSION`` (v1, v2 or v3 body and path). The v3 enquiry
  path is unknown: v2 and v3 countries are read with the v2 enquiry (``?transactionType=B2C``).
* PIN padding (PKCS#1 v1.5 or OAEP, and which OAEP) and the ``x-key`` padding: per-country settings with
  all four paddings seen in use. Signing on or off per country (``AIRTEL_SIGNING``).
* Pan-African host deprecated or not: the base URL is per country.
* MSISDN lengths for KE/TZ/MW and a leading 0: ``AIRTEL_MSISDN_LENGTH`` (9 by default) and
  ``AIRTEL_MSISDN_LEADING_ZERO``; numbers are accepted in any common form and sent in the national one.
* Amount decimals: ``AIRTEL_AMOUNT_DECIMALS`` (0 by default); an amount with more decimals is refused
  before sending, never rounded.
* ``transaction.id`` length and charset: ours are 35-39 letters and digits, inside every plausible rule.
* Enquiry needing the PIN: none is sent (there is no documented place for it). Should Airtel refuse such
  enquiries, the transfer stays open and goes to staff review; it is never re-sent or failed on it.
* Disbursement-wallet balance API: ``AIRTEL_BALANCE`` per country (v1, v2 ``type=DISB``, or ``off``).
* KYC not-found shape: a 404 or a failure whose text says not found is RECIPIENT_INVALID; anything else
  unreadable is PspUnavailable (the name check reports it unavailable).
* Callbacks for disbursements, their hash's canonical string and its place (body or header): accepted
  either way, the hash checked against every candidate text; the payout is settled by enquiry regardless.
* HTTP status of an expired token: 401 or 403 with ``invalid_token``, both handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from django.conf import settings

from psp.clients.airtel.adapter import AirtelAdapter, AirtelConfig
from psp.clients.airtel.countries import NAME, CountryConfig

__all__ = ["NAME", "AirtelAdapter", "AirtelConfig", "CountryConfig", "build_adapter"]

T = TypeVar("T")


def _for(mapping: Mapping[str, T], country: str, default: T) -> T:
    """A per-country setting: the country's own value, else the ``*`` one, else ``default``."""
    return mapping.get(country, mapping.get("*", default))


def build_adapter() -> AirtelAdapter:
    """The Airtel Money adapter from settings (``AIRTEL_*``)."""
    countries = tuple(
        CountryConfig(
            country=country,
            base_url=_for(settings.AIRTEL_BASE_URL, country, ""),
            pin=_for(settings.AIRTEL_PIN, country, ""),
            pin_padding=_for(settings.AIRTEL_PIN_ENCRYPTION, country, "pkcs1v15"),
            pin_public_key=_for(settings.AIRTEL_PIN_PUBLIC_KEY, country, ""),
            signing=_for(settings.AIRTEL_SIGNING, country, "off"),
            signing_public_key=_for(settings.AIRTEL_SIGNING_PUBLIC_KEY, country, ""),
            version=_for(settings.AIRTEL_DISBURSEMENT_VERSION, country, "v2"),
            msisdn_length=_for(settings.AIRTEL_MSISDN_LENGTH, country, 9),
            msisdn_leading_zero=country in settings.AIRTEL_MSISDN_LEADING_ZERO,
            amount_decimals=_for(settings.AIRTEL_AMOUNT_DECIMALS, country, 0),
            balance=_for(settings.AIRTEL_BALANCE, country, "v1"),
        )
        for country in settings.AIRTEL_COUNTRIES
    )
    return AirtelAdapter(
        AirtelConfig(
            client_id=settings.AIRTEL_CLIENT_ID,
            client_secret=settings.AIRTEL_CLIENT_SECRET,
            countries=countries,
            callback_secret=settings.AIRTEL_CALLBACK_SECRET,
            timeout=settings.AIRTEL_TIMEOUT_SECONDS,
        )
    )
