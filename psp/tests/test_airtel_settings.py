"""The AIRTEL_* settings: per-country values, checked at boot with one line naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from provision.tests.test_settings import GOOD_ENV, ROOT
from psp.clients import airtel

AIRTEL_ENV = {
    "PSP": "airtel",
    "AIRTEL_CLIENT_ID": "client",
    "AIRTEL_CLIENT_SECRET": "k3Vq9ZtR2mXw7LpB",
    "AIRTEL_COUNTRIES": "UG,KE",
    "AIRTEL_PIN": "UG=1234,KE=5678",
}
SHOWN = (
    "AIRTEL_BASE_URL",
    "AIRTEL_COUNTRIES",
    "AIRTEL_PIN_PUBLIC_KEY",
    "AIRTEL_SIGNING",
    "AIRTEL_MSISDN_LENGTH",
)
SHOW = (
    "import json; from django.conf import settings as s; "
    f"print(json.dumps({{name: getattr(s, name) for name in {SHOWN!r}}}))"
)


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env={**GOOD_ENV, **AIRTEL_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_per_country_values_fall_back_to_the_bare_one() -> None:
    result = run(
        ["shell", "-c", SHOW],
        AIRTEL_BASE_URL="https://openapi.airtel.africa,ZM=https://openapi.airtel.co.zm",
        AIRTEL_PIN_PUBLIC_KEY="ug=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ==,KE=abc=",
        AIRTEL_SIGNING="off,zm=PKCS1V15",
        AIRTEL_MSISDN_LENGTH="9,NG=10",
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "AIRTEL_BASE_URL": {"*": "https://openapi.airtel.africa", "ZM": "https://openapi.airtel.co.zm"},
        "AIRTEL_COUNTRIES": ["UG", "KE"],
        "AIRTEL_PIN_PUBLIC_KEY": {"UG": "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ==", "KE": "abc="},
        "AIRTEL_SIGNING": {"*": "off", "ZM": "pkcs1v15"},
        "AIRTEL_MSISDN_LENGTH": {"*": 9, "NG": 10},
    }


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AIRTEL_CLIENT_SECRET": ""}, "AIRTEL_CLIENT_SECRET"),
        ({"AIRTEL_PIN": "UG=1234"}, "AIRTEL_PIN"),  # nothing for KE
        ({"AIRTEL_PIN_ENCRYPTION": "rsa"}, "AIRTEL_PIN_ENCRYPTION"),
        ({"AIRTEL_DISBURSEMENT_VERSION": "UG=v4"}, "AIRTEL_DISBURSEMENT_VERSION"),
        ({"AIRTEL_COUNTRIES": "UGA"}, "AIRTEL_COUNTRIES"),
        ({"AIRTEL_AMOUNT_DECIMALS": "5"}, "AIRTEL_AMOUNT_DECIMALS"),
        ({"AIRTEL_BASE_URL": "UG=openapi.airtel.africa"}, "AIRTEL_BASE_URL"),
    ],
)
def test_bad_airtel_setting_stops_boot_naming_it(env: dict[str, str], variable: str) -> None:
    result = run(["check"], **env)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    assert variable in lines[0]


def test_adapter_is_built_per_country_from_the_settings(settings: Any) -> None:
    settings.AIRTEL_COUNTRIES = ["UG", "KE"]
    settings.AIRTEL_BASE_URL = {
        "*": "https://openapi.airtel.africa",
        "KE": "https://openapiuat.airtel.africa",
    }
    settings.AIRTEL_PIN = {"UG": "1234", "*": "9999"}
    settings.AIRTEL_DISBURSEMENT_VERSION = {"*": "v2", "KE": "v3"}
    settings.AIRTEL_SIGNING = {"*": "off", "KE": "oaep-sha256"}
    settings.AIRTEL_MSISDN_LEADING_ZERO = ["KE"]

    uganda, kenya = airtel.build_adapter().config.countries

    assert (uganda.country, uganda.currency, uganda.base_url, uganda.pin, uganda.version, uganda.signing) == (
        "UG",
        "UGX",
        "https://openapi.airtel.africa",
        "1234",
        "v2",
        "off",
    )
    assert (kenya.currency, kenya.base_url, kenya.pin, kenya.version, kenya.signing) == (
        "KES",
        "https://openapiuat.airtel.africa",
        "9999",
        "v3",
        "oaep-sha256",
    )
    assert (uganda.msisdn_leading_zero, kenya.msisdn_leading_zero) == (False, True)
