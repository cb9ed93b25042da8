"""The payout lane's loop: it looks for due work once for items that finish together, not once per item."""

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
