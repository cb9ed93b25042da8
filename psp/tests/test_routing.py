"""Which PSPs may take a new payout: the routes ops edit in admin (PspRoute), then the PSP setting."""

from __future__ import annotations

from typing import Any

import pytest

from psp import services
from psp.models import PspRoute

pytestmark = pytest.mark.django_db


def test_the_most_specific_route_goes_first_and_unrouted_psps_follow_in_setting_order(settings: Any) -> None:
    settings.PSP = ["sandbox", "mtn_momo"]

    assert services.psp_candidates(currency="UGX", institution="MOMOUGPC") == ["mtn_momo", "sandbox"]


def test_a_psp_routed_for_a_currency_takes_only_the_institutions_its_routes_match(settings: Any) -> None:
    settings.PSP = ["mtn_momo", "sandbox"]

    assert services.psp_candidates(currency="UGX", institution="BARCUGKX") == ["sandbox"]


def test_a_wildcard_route_matches_every_institution_it_names(settings: Any) -> None:
    settings.PSP = ["mtn_momo"]

    assert services.psp_candidates(currency="XOF", institution="MOMOBJPC") == ["mtn_momo"]
    assert services.psp_candidates(currency="XOF", institution="MOMOCIPC") == ["mtn_momo"]
    assert services.psp_candidates(currency="XOF", institution="ORANCIPC") == []


def test_a_route_ops_disabled_keeps_its_psp_away_from_the_currency(settings: Any) -> None:
    settings.PSP = ["lenco", "sandbox"]
    PspRoute.objects.filter(currency="NGN", psp="lenco").update(enabled=False)

    assert services.psp_candidates(currency="NGN", institution="ABNGNGLA") == ["sandbox"]


def test_priority_orders_routes_of_the_same_specificity(settings: Any) -> None:
    settings.PSP = ["sandbox", "lenco"]
    PspRoute.objects.create(currency="NGN", institution="*", psp="sandbox", priority=5)

    assert services.psp_candidates(currency="NGN", institution="ABNGNGLA") == ["sandbox", "lenco"]


def test_a_currency_without_routes_follows_the_psp_setting(settings: Any) -> None:
    settings.PSP = ["sandbox", "lenco"]

    assert services.psp_candidates(currency="BRL", institution="PIXKBRPC") == ["sandbox", "lenco"]


def test_routes_naming_a_psp_that_is_not_enabled_are_left_out(settings: Any) -> None:
    settings.PSP = ["sandbox"]

    assert services.psp_candidates(currency="KES", institution="SAFAKEPC") == ["sandbox"]
