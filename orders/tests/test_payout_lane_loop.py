"""The lane's loop: it looks for due work once for items that finish together, not once per item, and its
accept threads take offers while every payout thread waits on a PSP."""

from __future__ import annotations

import threading
import time

import pytest

from orders import payout_lane
from orders.payout_lane import PayoutLane


def test_items_that_finish_together_are_followed_by_one_look_for_due_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looks: list[float] = []
    started: list[int] = []
    due = list(range(1, 31))

    def claim_orders(*, limit: int) -> list[int]:
        looks.append(time.monotonic())
        handed, due[:] = due[:limit], due[limit:]
        return handed

    def start(*, order_pk: int) -> str:
        started.append(order_pk)
        time.sleep(0.01)
        return "paying"

    monkeypatch.setattr(payout_lane.order_services, "orders_claim_accept_due", lambda *, limit: [])
    monkeypatch.setattr(payout_lane.order_services, "orders_claim_payout_due", claim_orders)
    monkeypatch.setattr(payout_lane.order_services, "outbox_claim_due", lambda *, limit: [])
    monkeypatch.setattr(payout_lane.psp_services, "transfers_claim_due", lambda *, limit: [])
    monkeypatch.setattr(payout_lane.workflow, "payout_start", start)
    monkeypatch.setattr(payout_lane.BalanceTimer, "due_now", lambda self, now: [])
    monkeypatch.setattr(PayoutLane, "_heartbeat", lambda self: None)
    stop = threading.Event()
    lane = threading.Thread(target=PayoutLane(threads=30, poll=0.2).run, args=(stop,), daemon=True)

    lane.start()
    time.sleep(0.5)
    stop.set()
    lane.join(5)

    assert sorted(started) == list(range(1, 31))
    # one look hands out all 30, one finds nothing more; then one look after the 30 finish (not 30), and
    # the idle looks every 0.2 s
    assert len(looks) <= 6


def test_an_offer_is_accepted_while_every_payout_thread_waits_on_a_slow_psp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    psp_answers = threading.Event()
    accepted = threading.Event()
    due_payouts, due_offers = [1, 2], [10]
    waiting_on_psp: list[int] = []

    def claim_payouts(*, limit: int) -> list[int]:
        handed, due_payouts[:] = due_payouts[:limit], due_payouts[limit:]
        return handed

    def claim_offers(*, limit: int) -> list[int]:
        if len(waiting_on_psp) < 2:
            return []  # the offer arrives once both payout threads are stuck at the PSP
        handed, due_offers[:] = due_offers[:limit], due_offers[limit:]
        return handed

    def start(*, order_pk: int) -> str:
        waiting_on_psp.append(order_pk)
        psp_answers.wait(10)
        return "paying"

    def advance(*, order_pk: int) -> str:
        accepted.set()
        return "accepted"

    monkeypatch.setattr(payout_lane.order_services, "orders_claim_accept_due", claim_offers)
    monkeypatch.setattr(payout_lane.order_services, "orders_claim_payout_due", claim_payouts)
    monkeypatch.setattr(payout_lane.order_services, "outbox_claim_due", lambda *, limit: [])
    monkeypatch.setattr(payout_lane.psp_services, "transfers_claim_due", lambda *, limit: [])
    monkeypatch.setattr(payout_lane.workflow, "payout_start", start)
    monkeypatch.setattr(payout_lane.workflow, "order_advance", advance)
    monkeypatch.setattr(payout_lane.BalanceTimer, "due_now", lambda self, now: [])
    monkeypatch.setattr(PayoutLane, "_heartbeat", lambda self: None)
    monkeypatch.setattr(PayoutLane, "_notify", lambda self, pool: None)
    stop = threading.Event()
    loop = PayoutLane(threads=2, poll=0.05, accept_threads=1)
    lane = threading.Thread(target=loop.run, args=(stop,), daemon=True)

    lane.start()
    try:
        assert accepted.wait(5), "the offer waited for a payout thread"
        assert sorted(waiting_on_psp) == [1, 2]
        assert not psp_answers.is_set()
    finally:
        psp_answers.set()
        stop.set()
        lane.join(5)
    assert not lane.is_alive()
