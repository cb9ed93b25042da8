"""Money, times and countdowns are written one way on every admin page (issue 19, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import timezone

from provision import formatting

NOW = datetime(2026, 12, 3, 14, 1, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("40000.0000"), "NGN", "40,000.00 NGN"),
        (Decimal("1234567.5"), "KES", "1,234,567.50 KES"),
        (Decimal("1500000.0000"), "UGX", "1,500,000 UGX"),
        (Decimal("2500000"), "TZS", "2,500,000.00 TZS"),
        (Decimal("99.9"), "GHS", "99.90 GHS"),
        (Decimal("75000"), "MWK", "75,000.00 MWK"),
        (Decimal("250000.0000"), "XOF", "250,000 XOF"),
        (Decimal("1000.5"), "BRL", "1,000.50 BRL"),
        (Decimal("12.3456"), "ZMW", "12.3456 ZMW"),  # more decimals than the currency: shown, not rounded
        (Decimal("0.5"), "UGX", "0.5 UGX"),
        (Decimal("0"), "NGN", "0.00 NGN"),
        (Decimal("-3750.0000"), "NGN", "-3,750.00 NGN"),
        (None, "NGN", "—"),
    ],
)
def test_money_has_thousands_separators_and_the_currencys_own_exponent(
    amount: Decimal | None, currency: str, expected: str
) -> None:
    assert formatting.money(amount, currency) == expected


def test_money_amount_is_the_number_without_the_code() -> None:
    assert formatting.money_amount(Decimal("40000.0000"), "NGN") == "40,000.00"


def test_times_are_written_to_the_second_with_the_zone(settings: object) -> None:
    assert formatting.when(NOW) == "2026-12-03 14:01:07 UTC"
    with timezone.override("Africa/Lagos"):
        assert formatting.when(NOW) == "2026-12-03 15:01:07 WAT"
    assert formatting.when(None) == "—"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (30, "30 s left"),
        (59, "59 s left"),
        (60, "1 min 00 s left"),
        (185, "3 min 05 s left"),
        (7620, "2 h 07 min left"),
        (2 * 86400 + 3600, "2 d 01 h left"),
        (0, "overdue"),
        (-12, "overdue by 12 s"),
        (-125, "overdue by 2 min 05 s"),
    ],
)
def test_a_countdown_shows_seconds_under_a_minute_and_says_overdue_when_passed(
    seconds: int, expected: str
) -> None:
    assert formatting.countdown(NOW + timedelta(seconds=seconds), now=NOW) == expected


def test_a_30_second_window_and_an_overdue_hold_never_read_the_same() -> None:
    window = formatting.countdown(NOW + timedelta(seconds=30), now=NOW)
    overdue = formatting.countdown(NOW - timedelta(seconds=30), now=NOW)

    assert (window, overdue) == ("30 s left", "overdue by 30 s")


def test_age_counts_seconds_too() -> None:
    assert formatting.age(NOW - timedelta(seconds=42), now=NOW) == "42 s ago"


def test_the_template_filters_write_what_the_functions_write() -> None:
    template = Template(
        "{% load ops_format %}{{ amount|money:'NGN' }} | {{ amount|money_amount:'UGX' }} | {{ at|when }}"
    )

    rendered = template.render(Context({"amount": Decimal("40000.0000"), "at": NOW}))

    assert rendered == "40,000.00 NGN | 40,000 | 2026-12-03 14:01:07 UTC"


def test_django_writes_admin_times_to_the_second_with_the_zone() -> None:
    rendered = Template("{{ at }}").render(Context({"at": NOW}))

    assert rendered == "2026-12-03 14:01:07 UTC"
