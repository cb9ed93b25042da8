"""manage.py psp sync_banks: Lenco's bank list matched to the aggregator's institutions by normalised name."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_httpserver import HTTPServer

from psp.banks import BankUnmatched, MappingChange, institution_mapping_sync
from psp.models import InstitutionMapping
from psp.tests.helpers import JSON

pytestmark = pytest.mark.django_db
NBM_ID = "6d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
NGN_BANKS = [
    {"code": "000014", "name": "ACCESS BANK"},
    {"code": "000070", "name": "FIDELITY BANK PLC"},
    {"code": "090286", "name": "SAFEHAVEN MICROFINANCE BANK"},
    {"code": "100033", "name": "PALMPAY"},
    {"code": "100034", "name": "PalmPay Limited"},
    {"code": "100039", "name": "Paystack-Titan MFB"},
    {"code": "090790", "name": "PAYSTACK TITAN MICROFINANCE BANK"},
    {"code": "", "name": "A ROW WITHOUT A CODE"},
]


@pytest.fixture
def lenco_banks(settings: Any, lenco_fake: HTTPServer) -> HTTPServer:
    settings.PSP = ["lenco"]
    lenco_fake.expect_request("/v1/banks").respond_with_data(
        json.dumps({"status": True, "message": "", "data": NGN_BANKS}), content_type=JSON
    )
    lenco_fake.expect_request("/v2/banks", query_string="country=mw").respond_with_data(
        json.dumps(
            {
                "status": True,
                "message": "",
                "data": [{"id": NBM_ID, "name": "National Bank of Malawi", "country": "mw"}],
            }
        ),
        content_type=JSON,
    )
    return lenco_fake


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("psp", "sync_banks", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def lenco_code(institution: str) -> str | None:
    row = InstitutionMapping.objects.filter(psp="lenco", institution=institution).first()
    return row.psp_code if row else None


def test_sync_banks_updates_and_creates_mappings_matched_by_normalised_name(lenco_banks: HTTPServer) -> None:
    out, err = run("--psp", "lenco")

    lines = out.splitlines()
    assert "lenco NGN: 7 banks fetched" in lines
    assert "  matched    ABNGNGLA   Access Bank -> 000014 (ACCESS BANK)" in lines
    assert "  changed    FIDTNGLA   Fidelity Bank: 000007 -> 000070" in lines
    assert "  changed    SAHVNGPC   Safehaven Microfinance Bank: (new) -> 090286" in lines
    assert "  changed    NBMAMWMW   National Bank of Malawi: (new) -> " + NBM_ID in lines
    assert "lenco MWK: 1 matched, 1 changed, 8 unmatched" in lines
    assert lines[-1] == "lenco NGN: 4 matched, 2 changed, 28 unmatched"
    assert err == ""
    assert (
        lenco_code("ABNGNGLA"),
        lenco_code("FIDTNGLA"),
        lenco_code("SAHVNGPC"),
        lenco_code("NBMAMWMW"),
    ) == (
        "000014",
        "000070",
        "090286",
        NBM_ID,
    )
    created = InstitutionMapping.objects.get(psp="lenco", institution="SAHVNGPC")
    assert (created.currency, created.institution_name, created.enabled) == (
        "NGN",
        "Safehaven Microfinance Bank",
        True,
    )


def test_sync_banks_reports_what_it_could_not_match_and_leaves_those_rows_alone(
    lenco_banks: HTTPServer,
) -> None:
    [mwk, ngn] = institution_mapping_sync(psp="lenco")

    unmatched = {miss.institution: miss for miss in ngn.unmatched}
    assert unmatched["PAYTNGPC"] == BankUnmatched(
        institution="PAYTNGPC", name="Paystack-Titan MFB", why="2 lenco banks of that name (100039, 090790)"
    )
    assert unmatched["OPAYNGPC"] == BankUnmatched(
        institution="OPAYNGPC",
        name="OPay",
        why="no lenco bank of that name; mapped to 100004, not in lenco's list",
    )
    assert [match.institution for match in ngn.matched] == ["ABNGNGLA", "FIDTNGLA", "PALMNGPC", "SAHVNGPC"]
    assert ngn.changed == [
        MappingChange(institution="FIDTNGLA", name="Fidelity Bank", old_code="000007", new_code="000070"),
        MappingChange(
            institution="SAHVNGPC", name="Safehaven Microfinance Bank", old_code="", new_code="090286"
        ),
    ]
    assert (lenco_code("OPAYNGPC"), lenco_code("PALMNGPC"), lenco_code("PAYTNGPC")) == (
        "100004",
        "100033",
        None,
    )
    assert (mwk.currency, mwk.fetched, len(mwk.unmatched)) == ("MWK", 1, 8)


def test_sync_banks_dry_run_reports_changes_and_writes_nothing(lenco_banks: HTTPServer) -> None:
    before = list(InstitutionMapping.objects.order_by("pk").values_list("psp", "institution", "psp_code"))

    out, _ = run("--psp", "lenco", "--dry-run")

    assert "  would change FIDTNGLA   Fidelity Bank: 000007 -> 000070" in out.splitlines()
    assert (
        list(InstitutionMapping.objects.order_by("pk").values_list("psp", "institution", "psp_code"))
        == before
    )


def test_sync_banks_keeps_a_mapping_ops_disabled_disabled(lenco_banks: HTTPServer) -> None:
    InstitutionMapping.objects.filter(psp="lenco", institution="FIDTNGLA").update(enabled=False)

    run("--psp", "lenco")

    row = InstitutionMapping.objects.get(psp="lenco", institution="FIDTNGLA")
    assert (row.psp_code, row.enabled) == ("000070", False)


def test_sync_banks_exits_non_zero_when_no_bank_list_could_be_fetched(
    settings: Any, lenco_fake: HTTPServer
) -> None:
    settings.PSP = ["lenco"]
    down = json.dumps({"status": False, "message": "down"})
    lenco_fake.expect_request("/v1/banks").respond_with_data(down, status=503, content_type=JSON)
    lenco_fake.expect_request("/v2/banks").respond_with_data(down, status=503, content_type=JSON)
    before = InstitutionMapping.objects.count()

    with pytest.raises(CommandError, match="no bank list could be fetched from lenco"):
        run()

    assert InstitutionMapping.objects.count() == before


def test_sync_banks_for_a_psp_that_lists_no_banks_exits_non_zero() -> None:
    with pytest.raises(CommandError, match="no bank list could be fetched from sandbox"):
        run("--psp", "sandbox")
