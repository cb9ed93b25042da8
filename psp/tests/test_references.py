"""Payout references: a collision-free function of the whole order id and the attempt, PSP-valid.

Every PSP's ``make_reference`` (and the bank file's) must give distinct (order id, attempt) pairs distinct
references within what the PSP accepts, or the unique (psp, reference) constraint refuses the second
order's transfer on every retry and that order never pays.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from psp import external
from psp.clients.lenco import LencoAdapter, LencoConfig
from psp.clients.mtn_momo import MtnMomoAdapter, MtnMomoConfig
from psp.sandbox import SandboxAdapter

ORDER_UUID = "559028af-6e15-4b21-bab5-052a248db249"
MakeReference = Callable[..., str]


def lenco() -> LencoAdapter:
    return LencoAdapter(
        LencoConfig(
            base_url_v1="http://127.0.0.1:9/v1",
            base_url_v2="http://127.0.0.1:9/v2",
            api_key="key",
            account_id="6f2c3a9e-1b7d-4c55-9e0a-3d8b2f41c7aa",
            timeout=Decimal("1"),
        )
    )


def mtn_momo() -> MtnMomoAdapter:
    return MtnMomoAdapter(
        MtnMomoConfig(
            base_url="http://127.0.0.1:9/",
            subscription_key="key",
            api_user="a2b5c1d4-0e6f-4a3b-9c8d-7e6f5a4b3c2d",
            api_key="key",
            target_environment="sandbox",
            timeout=Decimal("1"),
        )
    )


# What each PSP accepts as a client reference (its alphabet and maximum length).
PSPS: dict[str, tuple[MakeReference, re.Pattern[str]]] = {
    # The sandbox behaves like Lenco: letters, digits, '-', '.', '_'; at most 40 characters.
    "sandbox": (SandboxAdapter().make_reference, re.compile(r"[A-Za-z0-9._-]{1,40}")),
    "lenco": (lenco().make_reference, re.compile(r"[A-Za-z0-9._-]{1,40}")),
    # X-Reference-Id: a UUID v4 in canonical form.
    "mtn_momo": (
        mtn_momo().make_reference,
        re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
    ),
    # pain.001 InstrId / EndToEndId: ISO 20022 Max35Text, in the SWIFT character set banks accept.
    "bank_file": (external.make_reference, re.compile(r"[A-Za-z0-9/?:().,'+-]{1,35}")),
}


def relatives(order_id: str) -> list[str]:
    """Ids a careless reference confuses with ``order_id``: other case, dashes dropped, another tail past
    the 32nd character."""
    return [
        order_id,
        order_id.upper(),
        order_id.lower(),
        order_id.replace("-", ""),
        order_id + "-",
        order_id[:32] + "0" + order_id[32:],
        order_id[:32] + "1" + order_id[32:],
    ]


order_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True),  # what the intake views accept
    st.text(min_size=1, max_size=64),
)
id_families = st.lists(order_ids, min_size=1, max_size=3).map(
    lambda ids: sorted({relative for order_id in ids for relative in relatives(order_id)})
)
# Transfer.attempt is a PositiveSmallIntegerField; attempts are 1, 2, ... in practice.
attempts = st.lists(
    st.one_of(st.sampled_from([1, 2, 9, 10, 11, 99, 100, 9999, 10000]), st.integers(1, 32767)),
    min_size=1,
    max_size=4,
    unique=True,
)


@pytest.mark.parametrize("psp", sorted(PSPS))
@given(ids=id_families, tries=attempts)
def test_distinct_order_ids_and_attempts_get_distinct_references_the_psp_accepts(
    psp: str, ids: list[str], tries: list[int]
) -> None:
    make_reference, accepted = PSPS[psp]

    references = {
        (order_id, attempt): make_reference(order_key=order_id, attempt=attempt)
        for order_id in ids
        for attempt in tries
    }

    assert len(set(references.values())) == len(references)
    for pair, reference in references.items():
        assert accepted.fullmatch(reference), (pair, reference)
        assert make_reference(order_key=pair[0], attempt=pair[1]) == reference  # deterministic


@pytest.mark.parametrize("psp", sorted(PSPS))
@pytest.mark.parametrize(
    ("order_id", "other_id"),
    [
        ("a" * 32 + "-first", "a" * 32 + "-second"),
        ("order-42", "order42"),
        (ORDER_UUID, ORDER_UUID.upper()),
        (ORDER_UUID, uuid.UUID(ORDER_UUID).hex),
    ],
)
def test_ids_equal_up_to_case_dashes_or_their_first_32_characters_get_distinct_references(
    psp: str, order_id: str, other_id: str
) -> None:
    make_reference, _ = PSPS[psp]

    assert make_reference(order_key=order_id, attempt=1) != make_reference(order_key=other_id, attempt=1)
