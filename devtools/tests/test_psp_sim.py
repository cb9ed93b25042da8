"""The PSP simulator, driven by the node's real Lenco adapter over real HTTP on loopback.

No database: the adapter is built directly (as psp.registry builds it) and pointed at the simulator.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from devtools.psp_sim import DEFAULT_ACCOUNT_ID, DEFAULT_ACCOUNT_NAME, PspSimulator
from psp.base import (
    FailureReason,
    PayoutRequest,
    PayoutStatus,
    PspBalanceReading,
    PspRejected,
    PspUnavailable,
    Recipient,
)
from psp.clients.lenco import LencoAdapter, LencoConfig

API_KEY = "sim-lenco-token-4d3c2b1a"
NUBAN = "0123456789"
ACCESS_BANK = "000014"
FIXTURES = Path(__file__).resolve().parents[2] / "psp" / "tests" / "fixtures" / "lenco"
ROOT = Path(__file__).resolve().parents[2]


def adapter_for(
    sim: PspSimulator, *, api_key: str = API_KEY, account_id: str = DEFAULT_ACCOUNT_ID, connections: int = 10
) -> LencoAdapter:
    return LencoAdapter(
        LencoConfig(
            base_url_v1=sim.v1_url,
            base_url_v2=sim.v2_url,
            api_key=api_key,
            account_id=account_id,
            timeout=Decimal("5"),
            connect_timeout=Decimal("2"),
            connections=connections,
        )
    )


def payout(reference: str, amount: str = "15000.00") -> PayoutRequest:
    return PayoutRequest(
        reference=reference,
        amount=Decimal(amount),
        currency="NGN",
        recipient=Recipient(institution="ABNGNGLA", account_identifier=NUBAN, psp_institution=ACCESS_BANK),
        narration="Payout 559028af",
    )


def reference(n: int) -> str:
    return f"pn-{n:032x}-1"


@pytest.fixture
def sim() -> Iterator[PspSimulator]:
    with PspSimulator(api_key=API_KEY, latency=0.05, read_latency=0.0) as simulator:
        yield simulator


def test_the_lenco_adapter_pays_a_recipient_pending_then_succeeded(sim: PspSimulator) -> None:
    adapter = adapter_for(sim)

    started = adapter.initiate_payout(payout(reference(1)))
    read = adapter.get_payout(reference=reference(1), currency="NGN")

    assert started.status is PayoutStatus.PENDING
    assert started.amount == Decimal("15000.00")
    assert read.status is PayoutStatus.SUCCEEDED
    assert read.psp_transaction_id == sim.transfer(reference(1)).nip_session_id  # type: ignore[union-attr]
    assert read.amount == Decimal("15000.00")
    assert read.fee == Decimal("0.00")
    assert read.completed_at is not None


def test_a_transfer_stays_pending_until_settle_after_has_passed(sim: PspSimulator) -> None:
    sim.settle_after = 0.3
    adapter = adapter_for(sim)
    adapter.initiate_payout(payout(reference(2)))

    early = adapter.get_payout(reference=reference(2), currency="NGN")
    time.sleep(0.35)
    late = adapter.get_payout(reference=reference(2), currency="NGN")

    assert early.status is PayoutStatus.PENDING
    assert late.status is PayoutStatus.SUCCEEDED


def test_a_repeated_post_of_a_reference_is_a_duplicate_the_adapter_reads_back(sim: PspSimulator) -> None:
    adapter = adapter_for(sim)
    adapter.initiate_payout(payout(reference(3)))

    again = adapter.initiate_payout(payout(reference(3)))

    assert again.status is PayoutStatus.SUCCEEDED  # the first transfer, read back by reference
    stats = sim.stats()
    assert (stats.posts, stats.created, stats.duplicates) == (2, 1, 1)
    assert len(sim.transfers()) == 1


def test_the_duplicate_answer_is_lencos_documented_one(sim: PspSimulator) -> None:
    adapter_for(sim).initiate_payout(payout(reference(4)))
    body = {
        "accountId": DEFAULT_ACCOUNT_ID,
        "amount": "15000.00",
        "narration": "Payout",
        "reference": reference(4),
        "accountNumber": NUBAN,
        "bankCode": ACCESS_BANK,
    }

    answer = requests.post(
        f"{sim.v1_url}/transfer", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5
    )

    documented = json.loads((FIXTURES / "v1_duplicate_reference.json").read_text())
    documented["errors"] = {reference(4): documented["errors"].popitem()[1]}
    assert answer.status_code == 400
    assert answer.json() == documented


def test_an_unknown_reference_is_not_found(sim: PspSimulator) -> None:
    found = adapter_for(sim).get_payout(reference=reference(5), currency="NGN")

    assert found.status is PayoutStatus.NOT_FOUND
    assert sim.stats().not_found == 1


def test_twenty_concurrent_payouts_overlap_instead_of_queueing() -> None:
    with PspSimulator(api_key=API_KEY, latency=0.5, read_latency=0.0) as sim:
        adapter = adapter_for(sim)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(adapter.initiate_payout, [payout(reference(100 + n)) for n in range(20)]))
        elapsed = time.monotonic() - started
        stats = sim.stats()

    assert all(result.status is PayoutStatus.PENDING for result in results)
    assert elapsed < 3.0  # one after the other would take 20 x 0.5 s = 10 s
    assert stats.max_in_flight >= 10
    assert stats.timings["transfer_create"].count == 20
    assert stats.timings["transfer_create"].p50_ms >= 500


@pytest.mark.parametrize(("connections", "discarded"), [(10, True), (20, False)])
def test_the_adapter_keeps_a_connection_for_each_call_in_flight(
    connections: int, discarded: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with PspSimulator(api_key=API_KEY, latency=0.3, read_latency=0.0) as sim:
        adapter = adapter_for(sim, connections=connections)
        with (
            caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"),
            ThreadPoolExecutor(20) as pool,
        ):
            list(pool.map(adapter.initiate_payout, [payout(reference(200 + n)) for n in range(20)]))

    # urllib3 closes a connection it cannot keep ("Connection pool is full, discarding connection"): the
    # next call opens a new one, a TLS handshake at a real PSP.
    assert any("pool is full" in record.getMessage() for record in caplog.records) is discarded


def test_latency_is_per_request_kind() -> None:
    with PspSimulator(api_key=API_KEY, latency=0.3, read_latency=0.1) as sim:
        adapter = adapter_for(sim)
        adapter.initiate_payout(payout(reference(6)))
        adapter.get_payout(reference=reference(6), currency="NGN")
        timings = sim.stats().timings

    assert 300 <= timings["transfer_create"].max_ms < 600
    assert 100 <= timings["transfer_get"].max_ms < 300


def test_a_wrong_api_key_is_refused_and_moves_no_money(sim: PspSimulator) -> None:
    adapter = adapter_for(sim, api_key="not-the-key")

    with pytest.raises(PspRejected) as refused:
        adapter.initiate_payout(payout(reference(7)))

    assert refused.value.http_status == 401
    assert sim.transfers() == []
    assert sim.stats().unauthorized == 1


def test_balances_read_as_decimal_and_fall_by_a_successful_payout() -> None:
    with PspSimulator(
        api_key=API_KEY, latency=0.0, read_latency=0.0, balance="100000.00", fee="10.75"
    ) as sim:
        adapter = adapter_for(sim, account_id="")  # the adapter finds the NGN account by GET /accounts
        adapter.initiate_payout(payout(reference(8), amount="15000.00"))
        adapter.get_payout(reference=reference(8), currency="NGN")

        readings = adapter.get_balances()  # lists v1 (NGN) and v2 (ZMW, MWK) accounts

    assert readings == [
        PspBalanceReading(currency="NGN", total=Decimal("84989.25"), available=Decimal("84989.25"))
    ]
    assert isinstance(readings[0].total, Decimal)


def test_a_payout_the_balance_cannot_cover_fails_with_insufficient_funds() -> None:
    with PspSimulator(api_key=API_KEY, latency=0.0, read_latency=0.0, balance="100.00") as sim:
        adapter = adapter_for(sim)
        adapter.initiate_payout(payout(reference(9), amount="150.00"))

        read = adapter.get_payout(reference=reference(9), currency="NGN")

    assert read.status is PayoutStatus.FAILED
    assert read.failure_reason is FailureReason.INSUFFICIENT_FUNDS


def test_the_failure_share_fails_the_same_references_every_time(sim: PspSimulator) -> None:
    sim.failure_rate, sim.latency = 0.5, 0.0
    adapter = adapter_for(sim)
    outcomes = []
    for n in range(40):
        adapter.initiate_payout(payout(reference(200 + n), amount="1.00"))
        outcomes.append(adapter.get_payout(reference=reference(200 + n), currency="NGN").status)

    failed = outcomes.count(PayoutStatus.FAILED)
    assert 5 <= failed <= 35
    assert failed + outcomes.count(PayoutStatus.SUCCEEDED) == 40
    with PspSimulator(api_key=API_KEY, latency=0.0, read_latency=0.0, failure_rate=0.5) as other:
        again = adapter_for(other)
        for n in range(40):
            again.initiate_payout(payout(reference(200 + n), amount="1.00"))
        assert [
            again.get_payout(reference=reference(200 + n), currency="NGN").status for n in range(40)
        ] == outcomes


def test_name_checks_resolve_the_account_holder(sim: PspSimulator) -> None:
    sim.account_names["0987654321"] = "ADAEZE OKAFOR"
    adapter = adapter_for(sim)
    other = Recipient(institution="ABNGNGLA", account_identifier="0987654321", psp_institution=ACCESS_BANK)
    default = Recipient(institution="ABNGNGLA", account_identifier=NUBAN, psp_institution=ACCESS_BANK)

    assert adapter.resolve_account(recipient=other, currency="NGN").account_name == "ADAEZE OKAFOR"
    assert adapter.resolve_account(recipient=default, currency="NGN").account_name == DEFAULT_ACCOUNT_NAME
    assert {bank.code for bank in adapter.list_banks(currency="NGN")} >= {ACCESS_BANK}


def test_node_env_points_the_node_at_the_simulator(sim: PspSimulator) -> None:
    env = sim.node_env()

    assert env["PSP"] == "lenco"
    assert env["LENCO_BASE_URL"] == f"http://127.0.0.1:{sim.port}/access/v1"
    assert env["LENCO_V2_BASE_URL"] == f"http://127.0.0.1:{sim.port}/access/v2"
    assert (env["LENCO_API_KEY"], env["LENCO_ACCOUNT_ID"]) == (API_KEY, DEFAULT_ACCOUNT_ID)


def test_python_dash_m_runs_it_in_the_foreground_until_interrupted() -> None:
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "devtools.psp_sim", "--port", "0", "--latency", "0", "--api-key", API_KEY],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        env = dict(process.stdout.readline().strip().split("=", 1) for _ in range(5))
        answer = requests.get(
            env["LENCO_BASE_URL"] + "/accounts", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5
        )
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)

    assert banner.startswith("psp_sim listening on http://127.0.0.1:")
    assert answer.json()["data"][0]["currency"] == "NGN"
    assert process.returncode == 0
    assert "reads=1" in output


def test_a_post_that_arrived_has_landed_even_if_the_simulator_stops_before_answering() -> None:
    sim = PspSimulator(api_key=API_KEY, latency=5.0).start()
    adapter = adapter_for(sim)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(adapter.initiate_payout, payout(reference(10)))
        deadline = time.monotonic() + 2
        while sim.transfer(reference(10)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        sim.stop()

        with pytest.raises(PspUnavailable):
            pending.result(timeout=5)

    assert time.monotonic() - started < 2  # nobody waits out the 5 s latency
    assert sim.transfer(reference(10)) is not None  # the outcome the node must look up


def test_a_request_is_in_the_stats_as_soon_as_its_answer_arrives() -> None:
    with PspSimulator(api_key=API_KEY, latency=0.0, read_latency=0.0) as sim:
        adapter = adapter_for(sim)
        adapter.initiate_payout(payout(reference(8)))
        for n in range(1, 101):
            adapter.get_payout(reference=reference(8), currency="NGN")
            assert sim.stats().timings["transfer_get"].count == n
