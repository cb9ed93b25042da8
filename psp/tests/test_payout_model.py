"""A model-based test of the payout path against hostile PSPs: money never leaves twice.

Hypothesis drives one accepted order through the real services with two simulated PSPs (``alpha`` and
``beta``) that, call by call, may: answer at once; time out after taking the payout, or before; crash the
node's process before or after taking it; show a payout on reads only later (read-after-write lag), or
never; answer "not found" for a payout they hold; refuse a re-send of a reference with any 4xx, answer it
as a duplicate, or take it idempotently; finish payouts late or fail them; send webhooks late, twice, out
of order or never. The node's task queue is modelled too: queued tasks run in any order, are delivered
again, or are lost (the sweep re-queues), and a second delivery of a send may race the first one. The
clock jumps (send leases, review windows, approval deadlines).

After every step:
* money that left (payouts the PSPs completed) for the order is at most its amount: one payout, ever;
* at most one PSP ever holds a payout of the order that may move money (pending or succeeded there);
* nothing is reported failed or cancelled to the aggregator while such a payout exists;
* the node never says paid unless a PSP completed the payout, and the ledger verifies;
* a transfer the PSP acknowledged (pending) or paid (succeeded) never moves back.

``make test`` runs a bounded, derandomized set on SQLite and PostgreSQL; a longer, seeded run:
``PAYOUT_MODEL_EXAMPLES=2000 PAYOUT_MODEL_STEPS=60 .venv/bin/pytest psp/tests/test_payout_model.py
--hypothesis-seed=7`` (hypothesis's own option; without it the examples are the same on every run).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string
from django_fsm_log.models import StateLog
from django_q.models import Schedule
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from balances import services as balance_services
from balances.models import Balance, LedgerEntry
from orders import services as order_services
from orders import tasks as order_tasks
from orders import workflow
from orders.models import Order, OrderStatus, OutboxMessage
from orders.tests.factories import OrderFactory
from provision import queue
from psp import registry, webhooks
from psp.base import (
    AccountName,
    DuplicateReference,
    FailureReason,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
    PspAdapter,
    PspBalanceReading,
    PspRejected,
    PspUnavailable,
    Recipient,
)
from psp.models import PspCircuit, Transfer, TransferStatus, WebhookEvent
from psp.references import payout_reference

pytestmark = pytest.mark.django_db

PSPS = ("alpha", "beta")
AMOUNT = Decimal("15000.00")
EXAMPLES = int(os.environ.get("PAYOUT_MODEL_EXAMPLES", "200"))
STEPS = int(os.environ.get("PAYOUT_MODEL_STEPS", "30"))
# Tasks of the payout path; the outbox's deliveries to the aggregator are not run (their rows are checked).
PAYOUT_TASKS = {"psp.tasks.transfer_send", "psp.tasks.transfer_check", "orders.tasks.order_start_payout"}
LANDED = ("pending", "succeeded")  # a payout in these states at a PSP may move, or has moved, money
NEVER_BACK: dict[str, set[str]] = {
    TransferStatus.PENDING: {TransferStatus.CREATED, TransferStatus.REJECTED},
    TransferStatus.SUCCEEDED: {str(status) for status in TransferStatus} - {TransferStatus.SUCCEEDED},
}


class Crash(BaseException):
    """The node's process dies here: nothing after this point of the call runs."""


@dataclass
class PspPayout:
    psp: str
    reference: str
    amount: Decimal
    status: str  # pending | succeeded | failed
    visible: bool  # reads show it (until then: read-after-write lag)
    transaction_id: str


@dataclass
class World:
    """What the PSPs hold, and the hypothesis draw of the step being run."""

    draw: Callable[[st.SearchStrategy[Any]], Any] = lambda strategy: strategy.example()
    payouts: dict[tuple[str, str], PspPayout] = field(default_factory=dict)
    adapters: dict[str, HostilePsp] = field(default_factory=dict)
    racing: Callable[[str], None] | None = None

    def result(self, payout: PspPayout) -> PayoutResult:
        status = {
            "pending": PayoutStatus.PENDING,
            "succeeded": PayoutStatus.SUCCEEDED,
            "failed": PayoutStatus.FAILED,
        }[payout.status]
        return PayoutResult(
            reference=payout.reference,
            status=status,
            psp_transaction_id=payout.transaction_id,
            failure_reason=FailureReason.OTHER if payout.status == "failed" else None,
            failure_message="Transfer failed at the PSP" if payout.status == "failed" else "",
            amount=payout.amount,
        )


class HostilePsp(PspAdapter):
    """A PSP whose every answer is drawn by hypothesis from what real PSPs have been seen to do."""

    def __init__(self, name: str, world: World) -> None:
        self.name = name
        self.world = world

    def supports(self, *, currency: str, institution: str) -> bool:
        return True

    def make_reference(self, *, order_key: str, attempt: int) -> str:
        return payout_reference(order_id=order_key, attempt=attempt, prefix=f"{self.name}-", max_length=64)

    def _take(self, request: PayoutRequest) -> PspPayout:
        payout = PspPayout(
            psp=self.name,
            reference=request.reference,
            amount=request.amount,
            status=self.world.draw(st.sampled_from(["pending", "pending", "succeeded"])),
            visible=self.world.draw(st.sampled_from([False, False, True])),
            transaction_id=f"{self.name.upper()}-{uuid.uuid4().hex[:12]}",
        )
        self.world.payouts[(self.name, request.reference)] = payout
        return payout

    def initiate_payout(self, request: PayoutRequest) -> PayoutResult:
        if self.world.racing is not None:
            race, self.world.racing = self.world.racing, None
            race(request.reference)  # a second delivery of the same send runs while this one is in flight
        existing = self.world.payouts.get((self.name, request.reference))
        if existing is None:
            behaviour = self.world.draw(
                st.sampled_from(
                    [
                        "answer",
                        "refuse",
                        "timeout_after_commit",
                        "timeout_before_commit",
                        "crash_after",
                        "crash",
                    ]
                )
            )
            if behaviour == "refuse":
                reason = self.world.draw(st.sampled_from(list(FailureReason)))
                raise PspRejected(f"{self.name} refused", psp=self.name, reason=reason, http_status=400)
            if behaviour == "timeout_before_commit":
                raise PspUnavailable(f"{self.name}: connect timeout", psp=self.name)
            if behaviour == "crash":
                raise Crash
            payout = self._take(request)
            if behaviour == "timeout_after_commit":
                raise PspUnavailable(f"{self.name}: read timeout", psp=self.name)
            if behaviour == "crash_after":
                raise Crash
            return self.world.result(payout)
        behaviour = self.world.draw(
            st.sampled_from(["duplicate", "refuse", "refuse", "idempotent", "timeout", "crash"])
        )
        if behaviour == "duplicate":
            raise DuplicateReference("duplicate reference", psp=self.name, http_status=409)
        if behaviour == "refuse":
            reason = self.world.draw(st.sampled_from(list(FailureReason)))
            raise PspRejected(
                f"{self.name} refused the re-send", psp=self.name, reason=reason, http_status=400
            )
        if behaviour == "timeout":
            raise PspUnavailable(f"{self.name}: read timeout", psp=self.name)
        if behaviour == "crash":
            raise Crash
        return self.world.result(existing)

    def get_payout(self, *, reference: str, currency: str) -> PayoutResult:
        behaviour = self.world.draw(st.sampled_from(["answer", "answer", "lag", "timeout"]))
        if behaviour == "timeout":
            raise PspUnavailable(f"{self.name}: read timeout", psp=self.name)
        payout = self.world.payouts.get((self.name, reference))
        if payout is None or not payout.visible or behaviour == "lag":
            return PayoutResult(reference=reference, status=PayoutStatus.NOT_FOUND)
        return self.world.result(payout)

    def resolve_account(self, *, recipient: Recipient, currency: str) -> AccountName:
        return AccountName(
            account_identifier=recipient.account_identifier, account_name=recipient.account_name
        )

    def get_balances(self) -> list[PspBalanceReading]:
        return []


def forget_earlier_examples() -> None:
    for model in (WebhookEvent, OutboxMessage, LedgerEntry, Transfer, StateLog, Order, Balance, PspCircuit):
        model.objects.all().delete()
    Schedule.objects.all().delete()


class PayoutMachine(RuleBasedStateMachine):
    """One accepted order, two hostile PSPs, the node's queue and clock."""

    world: World
    clock: list[timedelta]

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[tuple[str, dict[str, Any]]] = []
        self.world.payouts.clear()
        self.world.racing = None
        self.clock[0] = timedelta(0)
        forget_earlier_examples()  # the same start every time: hypothesis replays examples to shrink them
        order = OrderFactory.create(amount=AMOUNT, account_identifier="0123456789")
        balance_services.balance_credit(currency=order.currency, amount=AMOUNT, reason="funds")
        order_services.order_decide(order_pk=order.pk)
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.ACCEPTED)  # the aggregator said 201
        self.order_pk = order.pk
        self.seen: dict[int, str] = {}

    def enqueue(self, func: str, **kwargs: Any) -> None:
        options = {"task_name", "deferrable", "once_per_transaction", "at", "q_options"}
        if func in PAYOUT_TASKS:
            self.queued.append((func, {k: v for k, v in kwargs.items() if k not in options}))

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
        except Crash:
            pass  # the process died mid-call; whatever it committed stays, the rest is lost
        except order_services.OrderTransitionNotAllowed:
            pass  # a refusal the node answers itself (no PSP able, not payable in this state)

    def _use(self, data: st.DataObject) -> None:
        self.world.draw = data.draw

    def _transfers(self) -> list[Transfer]:
        return list(Transfer.objects.filter(order_id=self.order_pk).order_by("attempt"))

    # --- what happens ----------------------------------------------------------------------------------

    def _order_status(self) -> str:
        return Order.objects.values_list("status", flat=True).get(pk=self.order_pk)

    @initialize(data=st.data())
    def the_worker_starts_the_payout(self, data: st.DataObject) -> None:
        self._use(data)
        self._run(lambda: order_services.order_start_payout(order_pk=self.order_pk))

    @precondition(lambda self: self._order_status() == OrderStatus.ACCEPTED)
    @rule(data=st.data())
    def the_worker_starts_the_payout_again(self, data: st.DataObject) -> None:
        self._use(data)
        self._run(lambda: order_services.order_start_payout(order_pk=self.order_pk))

    @precondition(lambda self: bool(self.queued))
    @rule(data=st.data(), delivery=st.sampled_from(["once", "again_later", "racing", "racing", "lost"]))
    def the_worker_takes_a_queued_task(self, data: st.DataObject, delivery: str) -> None:
        self._use(data)
        index = data.draw(st.integers(0, len(self.queued) - 1))
        func, kwargs = self.queued[index] if delivery == "again_later" else self.queued.pop(index)
        if delivery == "lost":
            return
        if delivery == "racing" and func == "psp.tasks.transfer_send":
            # The second delivery runs while the first waits for the PSP, maybe past the send's lease.
            def race(_reference: str) -> None:
                self.clock[0] += timedelta(seconds=data.draw(st.sampled_from([0, 61])))
                self._run(lambda: import_string(func)(**kwargs))

            self.world.racing = race
        self._run(lambda: import_string(func)(**kwargs))
        self.world.racing = None

    @rule(data=st.data())
    def the_sweep_queues_what_is_due(self, data: st.DataObject) -> None:
        self._use(data)
        self._run(order_tasks.sweep)

    @precondition(lambda self: Transfer.objects.filter(order_id=self.order_pk).exists())
    @rule(data=st.data(), later=st.sampled_from([0, 61]))
    def a_status_check_runs(self, data: st.DataObject, later: int) -> None:
        self.clock[0] += timedelta(seconds=later)
        self._use(data)
        transfer = data.draw(st.sampled_from(self._transfers()))
        self._run(lambda: workflow.payout_step(transfer_pk=transfer.pk))

    @precondition(lambda self: any(p.status == "pending" for p in self.world.payouts.values()))
    @rule(data=st.data())
    def a_psp_finishes_a_payout(self, data: st.DataObject) -> None:
        payout = data.draw(st.sampled_from([p for p in self.world.payouts.values() if p.status == "pending"]))
        payout.status = data.draw(st.sampled_from(["succeeded", "succeeded", "failed"]))

    @precondition(lambda self: any(not p.visible for p in self.world.payouts.values()))
    @rule(data=st.data())
    def a_psp_read_catches_up(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from([p for p in self.world.payouts.values() if not p.visible])).visible = True

    @precondition(lambda self: bool(self.world.payouts))
    @rule(data=st.data())
    def a_webhook_arrives(self, data: st.DataObject) -> None:
        self._use(data)
        payout = data.draw(st.sampled_from(list(self.world.payouts.values())))
        event_id = f"{payout.reference}:{data.draw(st.integers(0, 2))}"  # the same event again, or another
        event, _ = WebhookEvent.objects.get_or_create(
            psp=payout.psp,
            event_id=event_id,
            defaults={"reference": payout.reference, "body": "{}", "signature_valid": True},
        )
        self._run(lambda: webhooks.webhook_process(event_pk=event.pk))

    @rule(seconds=st.sampled_from([1, 5, 61, 61, 61, 120, 901, 7201]))
    def time_passes(self, seconds: int) -> None:
        self.clock[0] += timedelta(seconds=seconds)

    # --- what must hold ----------------------------------------------------------------------------------

    def _landed(self) -> list[PspPayout]:
        references = {(t.psp, t.reference) for t in self._transfers()}
        return [p for key, p in self.world.payouts.items() if key in references and p.status in LANDED]

    @invariant()
    def money_leaves_at_most_once_through_at_most_one_psp(self) -> None:
        landed = self._landed()
        assert len({p.psp for p in landed}) <= 1, landed
        assert len(landed) <= 1, landed
        assert sum((p.amount for p in landed if p.status == "succeeded"), Decimal(0)) <= AMOUNT

    @invariant()
    def nothing_is_reported_failed_or_cancelled_while_money_may_have_landed(self) -> None:
        if not self._landed():
            return
        order = Order.objects.get(pk=self.order_pk)
        assert order.status not in (OrderStatus.CANCELLED, OrderStatus.ACCEPTED), order.status
        messages = OutboxMessage.objects.filter(order_id=self.order_pk)
        assert not messages.filter(kind="cancel").exists()
        assert not [m for m in messages.filter(kind="fulfil") if m.payload["validationStatus"] == "failed"]

    @invariant()
    def the_node_says_paid_only_when_a_psp_completed_the_payout(self) -> None:
        order = Order.objects.get(pk=self.order_pk)
        if order.status in (OrderStatus.PAID, OrderStatus.FULFILLED):
            completed = [p for p in self._landed() if p.status == "succeeded"]
            assert [p.psp for p in completed] == [order.psp], (order.psp, completed)

    @invariant()
    def the_ledger_verifies(self) -> None:
        assert balance_services.balance_verify() == []

    @invariant()
    def an_acknowledged_or_paid_transfer_never_moves_back(self) -> None:
        for transfer in self._transfers():
            before = self.seen.get(transfer.pk, "")
            if before in NEVER_BACK:
                assert transfer.status not in NEVER_BACK[before], (before, transfer.status)
            self.seen[transfer.pk] = transfer.status


@pytest.fixture
def hostile_psps(settings: Any, monkeypatch: pytest.MonkeyPatch) -> World:
    world = World()
    world.adapters = {name: HostilePsp(name, world) for name in PSPS}
    settings.PSP = list(PSPS)
    settings.PAYOUT_NAME_CHECK = "off"
    settings.MANUAL_REVIEW_ABOVE = {}
    monkeypatch.setattr(registry, "adapter", lambda name: world.adapters[name])
    return world


def test_no_hostile_psp_behaviour_or_task_interleaving_pays_an_order_twice(
    hostile_psps: World, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    clock = [timedelta(0)]
    start = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: start + clock[0])  # time moves only when the model says
    machine: dict[str, PayoutMachine] = {}

    class Machine(PayoutMachine):
        world = hostile_psps

        def __init__(self) -> None:
            self.clock = clock
            machine["current"] = self
            super().__init__()

    monkeypatch.setattr(queue, "enqueue", lambda func, **kwargs: machine["current"].enqueue(func, **kwargs))

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=request.config.getoption("hypothesis_seed", None) is None,
        ),
    )
