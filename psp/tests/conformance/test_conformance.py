"""The conformance suite: every PSP adapter, against its own fake (``fakes.FAKES``), through the node's real
path: ``order_start_payout`` and the payout lane (``run_lane``), PSP webhooks through the view, the balance
sync (``workflow.balances_sync_psp``), name resolution (``account_resolve``) and bank lists.

Each test asserts the node's rules (README "Guarantees") as money: how many payouts the PSP holds for the
order (never two), the ledger (``balance_verify``; a debit only after the PSP's own answer), and what the
aggregator is told (the outbox). A test that needs a capability the fake declares absent is skipped with
the fake's reason; one that needs something the fake or its adapter neither has nor declares fails and says
what is missing.

Time is moved, never waited for: a transfer is made due (``due_now``) or its send lease is run out
(``later``) by writing the timestamps the payout lane reads. The only real waits are the fakes' lost
answers (``fakes.wire.LATE``), a second or so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from django.conf import settings as django_settings
from django.test import Client, TestCase
from django.utils import timezone

from balances import selectors as balance_selectors
from balances import services as balance_services
from balances.models import EntryKind, LedgerEntry, PspBalance
from orders import services as order_services
from orders import workflow
from orders.models import DeclineReason, Order, OrderStatus, OutboxMessage
from orders.selectors import order_tx_status
from orders.tests.factories import OrderFactory
from psp import banks, registry
from psp import services as psp_services
from psp.base import PspAdapter
from psp.clients import http
from psp.models import InstitutionMapping, SandboxPayout, Transfer, TransferStatus, WebhookEvent
from psp.tests.conformance.conftest import KitServer
from psp.tests.conformance.fakes import FAKES
from psp.tests.conformance.kit import (
    CAPABILITIES,
    Callback,
    FakePayout,
    PspFake,
    Refusal,
    Send,
    Status,
    fake_id,
)
from psp.tests.helpers import accepted_order, fulfil_statuses, transfers_of
from psp.tests.helpers import run_lane as lane_pass

pytestmark = pytest.mark.django_db

OPEN = (TransferStatus.CREATED, TransferStatus.PENDING)
RETRY_AFTER_CAP = timedelta(minutes=5)  # a longer Retry-After is not waited for in full
# What a scripted answer needs beyond what every PSP has.
NEEDS: dict[Send | Refusal, str] = {
    Send.SUCCEEDED: "synchronous_success",
    Send.TIMEOUT_AFTER_COMMIT: "timeouts",
    Send.TIMEOUT_BEFORE_COMMIT: "timeouts",
    Refusal.SERVICE_DOWN: "outages",
    Refusal.RATE_LIMITED: "outages",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test runs once per fake (``FAKES``; the test id is the fake's). ``duplicate_form``: once per
    documented form of each fake (a fake with none gets one test, which fails unless the fake declares
    ``duplicate_reference`` absent)."""
    if "fake" not in metafunc.fixturenames:
        return
    if "duplicate_form" not in metafunc.fixturenames:
        metafunc.parametrize("fake", FAKES, indirect=True, ids=fake_id)
        return
    pairs = [(fake, form) for fake in FAKES for form in (fake.duplicate_forms or ("",))]
    metafunc.parametrize(
        ("fake", "duplicate_form"),
        pairs,
        indirect=["fake"],
        ids=[f"{fake_id(fake)}-{form or 'none'}" for fake, form in pairs],
    )


# --- what the fake and its adapter have ------------------------------------------------------------------


def needs(fake: PspFake, capability: str) -> None:
    """Skip the test, with the fake's reason, when it declares ``capability`` absent."""
    why = fake.capabilities.get(capability)
    if why:
        pytest.skip(f"{fake_id(type(fake))} has no {capability}: {why}")


@contextmanager
def provided(fake: PspFake, what: str, capability: str | None) -> Iterator[None]:
    """A call of the fake that raises NotImplementedError fails the test, naming what is missing."""
    try:
        yield
    except NotImplementedError as exc:
        remedy = (
            f"implement it, or declare capabilities[{capability!r}] with the reason the PSP has none"
            if capability
            else "implement it (every PSP has this)"
        )
        why = exc or "NotImplementedError"
        pytest.fail(
            f"{fake_id(type(fake))}: {type(fake).__name__}.{what} is missing ({why}): {remedy}",
            pytrace=False,
        )


def adapter_has(fake: PspFake, method: str, capability: str) -> PspAdapter:
    """The fake's adapter; the test fails when it inherits ``method`` from PspAdapter (which refuses)."""
    adapter = registry.adapter(fake.name)
    if getattr(type(adapter), method) is getattr(PspAdapter, method):
        pytest.fail(
            f"{fake_id(type(fake))}: the {fake.name!r} adapter ({type(adapter).__qualname__}) does not "
            f"implement {method}, and {type(fake).__name__} does not declare capabilities[{capability!r}]",
            pytrace=False,
        )
    return adapter


def script(fake: PspFake, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
    """What the fake's next create call gets (skipped when the fake declares that answer absent)."""
    capability = "duplicate_reference" if duplicate_form else NEEDS.get(behaviour)
    if capability:
        needs(fake, capability)
    what = f"script_send({behaviour!s}{', duplicate_form=' + repr(duplicate_form) if duplicate_form else ''})"
    with provided(fake, what, capability):
        fake.script_send(behaviour, duplicate_form=duplicate_form)


def lag_reads(fake: PspFake, count: int) -> None:
    needs(fake, "read_lag")
    with provided(fake, f"lag_reads({count})", "read_lag"):
        fake.lag_reads(count)


def callback(fake: PspFake, reference: str, *, forged: bool = False) -> Any:
    with provided(fake, f"callback(forged={forged})", "webhooks"):
        return fake.callback(reference, forged=forged)


# --- arrange and act through the node's own path --------------------------------------------------------


def start(fake: PspFake) -> Transfer:
    """An order the aggregator assigned and the node accepted (its amount reserved), its payout started:
    the transfer written at the fake's PSP, not sent yet. Script the first send before."""
    order = accepted_order(
        order_id=str(uuid.uuid4()),
        amount=str(fake.amount),
        funds=str(fake.amount * 4),
        currency=fake.currency,
        institution=fake.institution,
        account_identifier=fake.order_account(),
        account_name=fake.account_name,
    )
    order_services.order_start_payout(order_pk=order.pk)
    transfer = Transfer.objects.get(order=order)
    assert transfer.psp == fake.name, f"the node routed the payout to {transfer.psp}, not {fake.name}"
    return transfer


def settle(fake: PspFake) -> None:
    """Until the fake has answered every request (a lost answer is still being held back)."""
    if isinstance(fake.server, KitServer):
        fake.server.wait_idle()


def posts(fake: PspFake) -> int:
    settle(fake)
    return fake.posts()


def due_now(transfer: Transfer) -> None:
    """As if the transfer's next read were due: time passes."""
    Transfer.objects.filter(pk=transfer.pk, status__in=OPEN).update(next_check_at=timezone.now())


def later(transfer: Transfer) -> None:
    """As if the transfer's send lease had run out and it were due again (a re-send may go)."""
    Transfer.objects.filter(pk=transfer.pk).update(
        last_sent_at=timezone.now() - psp_services.SEND_LEASE - timedelta(seconds=1),
        next_check_at=timezone.now(),
    )


def lane(fake: PspFake) -> int:
    """The payout lane's work due now (``run_lane``); then, for a PSP that answers the node's reads by
    callback (``query_answers``: M-Pesa's Transaction Status), those answers through the node's view, as
    the PSP posts them a moment after the query, and the lane again, until the PSP owes none. Items run."""
    ran = lane_pass()
    for _ in range(5):
        settle(fake)
        owed = fake.query_answers()
        if not owed:
            break
        client = Client()
        for answer in owed:
            assert post(client, answer).status_code == 200
        ran += lane_pass()
    return ran


def deliver(client: Client, fake: PspFake, reference: str, *, forged: bool = False) -> Any:
    """The PSP's callback about ``reference``, through the node's webhook view (and what it queues)."""
    return post(client, callback(fake, reference, forged=forged))


def post(client: Client, sent: Callback) -> Any:
    """A callback through the node's view (and what it queues)."""
    extra: dict[str, Any] = {key: value for key, value in sent.headers.items() if key != "CONTENT_TYPE"}
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.generic(
            sent.method,
            sent.path,
            data=sent.body,
            content_type=sent.headers.get("CONTENT_TYPE", "application/json"),
            **extra,
        )
    return response


def held_for(fake: PspFake, order: Order) -> list[FakePayout]:
    references = {t.reference for t in Transfer.objects.filter(order=order, psp=fake.name)}
    return [payout for payout in fake.held() if payout.reference in references]


def refreshed(transfer: Transfer) -> tuple[Transfer, Order]:
    transfer.refresh_from_db()
    order = Order.objects.get(pk=transfer.order_id)
    return transfer, order


# --- what must hold whatever happened ---------------------------------------------------------------------


def assert_money_safe(fake: PspFake, order: Order) -> None:
    """At most one payout held for the order, at one PSP, for its amount; a refused transfer has none; the
    ledger agrees with the balances and debits only a paid order, once; the aggregator is told one txId."""
    order.refresh_from_db()
    transfers = list(Transfer.objects.filter(order=order))
    held = held_for(fake, order)
    at_sandbox = (
        SandboxPayout.objects.filter(reference__in=[t.reference for t in transfers if t.psp == "sandbox"])
        if fake.name != "sandbox"
        else SandboxPayout.objects.none()
    )
    assert len(held) + at_sandbox.count() <= 1, f"more than one payout held for one order: {held}"
    for payout in held:
        assert (payout.amount, payout.currency) == (order.amount, order.currency), payout
    refused = {t.reference for t in transfers if t.status == TransferStatus.REJECTED and t.psp == fake.name}
    assert not refused & {payout.reference for payout in held}, (
        "the PSP holds a payout the node took as refused"
    )
    assert len([t for t in transfers if t.status != TransferStatus.REJECTED]) <= 1
    assert balance_services.balance_verify() == []
    debits = LedgerEntry.objects.filter(order=order, kind=EntryKind.DEBIT)
    fulfils = list(OutboxMessage.objects.filter(order=order, kind="fulfil").order_by("pk"))
    assert len({message.payload["txId"] for message in fulfils}) <= 1, "two txIds reported for one payout"
    if order.status in (OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.REVERSED):
        assert debits.count() == 1
        assert debits.get().amount == order.amount
        assert fulfil_statuses(order) == ["pending", "success"]
        credits = LedgerEntry.objects.filter(order=order, kind=EntryKind.CREDIT)
        assert credits.count() == (order.status == OrderStatus.REVERSED)
    else:
        assert "success" not in fulfil_statuses(order)
        assert not debits.exists()
    if order.status == OrderStatus.CANCELLED:
        assert LedgerEntry.objects.filter(order=order, kind=EntryKind.RELEASE).count() == 1


def assert_open(transfer: Transfer) -> Order:
    """The transfer's outcome is unknown or pending: nothing final, nothing reported but a pending fulfil."""
    transfer, order = refreshed(transfer)
    assert transfer.status in OPEN, transfer.status
    assert (order.status, order.psp) == (OrderStatus.PAYING, transfer.psp)
    assert not order.outbox.filter(kind="cancel").exists()
    assert "failed" not in fulfil_statuses(order)
    assert "success" not in fulfil_statuses(order)
    return order


def pay_by_polling(fake: PspFake, transfer: Transfer) -> Order:
    """The PSP completes the payout; the lane's next read finds it."""
    fake.finish(transfer.reference, Status.SUCCEEDED)
    due_now(transfer)
    lane(fake)
    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.SUCCEEDED, OrderStatus.PAID)
    return order


def paid(fake: PspFake) -> Transfer:
    """A payout the fake took (pending), completed, and the node read as paid."""
    script(fake, Send.PENDING)
    transfer = start(fake)
    lane(fake)
    pay_by_polling(fake, transfer)
    transfer.refresh_from_db()
    return transfer


# --- the fake and its adapter plug in ------------------------------------------------------------------


def test_the_fake_and_its_adapter_plug_into_the_node(fake: PspFake) -> None:
    assert fake.name in django_settings.PSP_ADAPTERS, f"no adapter {fake.name!r} in PSP_ADAPTERS"
    assert set(fake.capabilities) <= set(CAPABILITIES), set(fake.capabilities) - set(CAPABILITIES)
    assert all(isinstance(why, str) and why.strip() for why in fake.capabilities.values())
    assert len(set(fake.duplicate_forms)) == len(fake.duplicate_forms)
    adapter = registry.adapter(fake.name)

    routed = psp_services.route(currency=fake.currency, institution=fake.institution)

    assert adapter.supports(currency=fake.currency, institution=fake.institution)
    assert [candidate.name for candidate in routed] == [fake.name]
    if "webhooks" not in fake.capabilities:
        adapter_has(fake, "parse_webhook", "webhooks")
    if "bank_list" not in fake.capabilities:
        adapter_has(fake, "list_banks", "bank_list")


def test_an_institution_with_no_mapping_is_paid_or_declined_never_accepted_then_refused(
    fake: PspFake,
) -> None:
    """Ops have not mapped the institution to the PSP's own code. A PSP that cannot pay without that code
    must be known to routing (``NEEDS_MAPPING``), so the offer is declined at once; accepting it and then
    having the adapter refuse it costs the provider a cancel and the sender a delay."""
    InstitutionMapping.objects.filter(psp=fake.name).delete()
    script(fake, Send.PENDING)
    order = OrderFactory.create(
        amount=fake.amount,
        currency=fake.currency,
        institution=fake.institution,
        account_identifier=fake.order_account(),
        account_name=fake.account_name,
    )
    balance_services.balance_credit(currency=fake.currency, amount=fake.amount * 4, reason="funds")

    order_services.order_decide(order_pk=order.pk)

    order.refresh_from_db()
    if order.status == OrderStatus.DECLINED:
        assert order.decline_reason == DeclineReason.UNSUPPORTED_INSTITUTION
        return
    assert order.status == OrderStatus.ACCEPTING
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.ACCEPTED)  # as if the aggregator said 201
    order_services.order_start_payout(order_pk=order.pk)
    lane(fake)
    transfer = Transfer.objects.get(order=order)
    assert transfer.status != TransferStatus.REJECTED, (
        f"accepted, then refused before it reached {fake.name}: {transfer.failure_message}"
    )
    assert [p.reference for p in held_for(fake, order)] == [transfer.reference]


# --- payouts -------------------------------------------------------------------------------------------


def test_payout_pending_then_succeeded_by_polling_alone(fake: PspFake) -> None:
    """No callback ever comes (or the PSP sends none): the lane's reads finish the payout."""
    script(fake, Send.PENDING)
    transfer = start(fake)

    lane(fake)

    order = assert_open(transfer)
    assert transfer.status == TransferStatus.PENDING
    assert fulfil_statuses(order) == ["pending"]
    assert [(p.reference, p.status) for p in held_for(fake, order)] == [(transfer.reference, Status.PENDING)]

    order = pay_by_polling(fake, transfer)

    assert order.psp == fake.name
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_payout_pending_then_failed_releases_and_reports_failed(fake: PspFake) -> None:
    script(fake, Send.PENDING)
    transfer = start(fake)
    lane(fake)

    fake.finish(transfer.reference, Status.FAILED)
    due_now(transfer)
    lane(fake)

    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.FAILED, OrderStatus.CANCELLED)
    assert fulfil_statuses(order) == ["pending", "failed"]
    assert balance_selectors.balance_get(currency=fake.currency).reserved == 0
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_synchronous_success_pays_at_once(fake: PspFake) -> None:
    script(fake, Send.SUCCEEDED)
    transfer = start(fake)

    lane(fake)

    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.SUCCEEDED, OrderStatus.PAID)
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_timeout_after_commit_the_look_up_finds_it_with_one_create_call(fake: PspFake) -> None:
    script(fake, Send.TIMEOUT_AFTER_COMMIT)
    transfer = start(fake)

    lane(fake)  # the PSP took it; its answer is lost

    order = assert_open(transfer)
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)
    assert fulfil_statuses(order) == []
    assert [p.reference for p in held_for(fake, order)] == [transfer.reference]

    settle(fake)
    due_now(transfer)
    lane(fake)  # the look-up by reference

    order = assert_open(transfer)
    assert transfer.status == TransferStatus.PENDING
    order = pay_by_polling(fake, transfer)
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_timeout_before_commit_the_look_up_finds_nothing_and_the_resend_is_safe(fake: PspFake) -> None:
    script(fake, Send.TIMEOUT_BEFORE_COMMIT)
    transfer = start(fake)
    lane(fake)  # the PSP did not take it; its answer is lost
    settle(fake)

    due_now(transfer)
    lane(fake)  # the look-up finds nothing; the send may still be on its way: no re-send yet

    order = assert_open(transfer)
    assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)
    assert held_for(fake, order) == []
    assert posts(fake) == 1

    script(fake, Send.PENDING)
    later(transfer)
    lane(fake)  # nothing found again, the lease is over: the same reference is sent again

    order = assert_open(transfer)
    assert (transfer.status, transfer.sends) == (TransferStatus.PENDING, 2)
    assert [p.reference for p in held_for(fake, order)] == [transfer.reference]
    order = pay_by_polling(fake, transfer)
    assert posts(fake) == 2
    assert transfers_of(order) == [(fake.name, 1, transfer.reference, TransferStatus.SUCCEEDED)]
    assert_money_safe(fake, order)


def test_callback_after_a_lost_answer_settles_it_by_a_read(fake: PspFake, client: Client) -> None:
    """The create call's answer was lost; the PSP paid and calls back: the callback makes the maybe-sent
    transfer due at once, and the read by reference settles it (no second create call)."""
    needs(fake, "webhooks")
    adapter_has(fake, "parse_webhook", "webhooks")
    script(fake, Send.TIMEOUT_AFTER_COMMIT)
    transfer = start(fake)
    lane(fake)
    settle(fake)
    fake.finish(transfer.reference, Status.SUCCEEDED)

    response = deliver(client, fake, transfer.reference)
    lane(fake)  # no time passes: the callback made the transfer due

    assert response.status_code == 200
    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.SUCCEEDED, OrderStatus.PAID)
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_read_after_write_lag_keeps_the_transfer_open_until_the_psp_shows_it(fake: PspFake) -> None:
    script(fake, Send.PENDING)
    transfer = start(fake)
    lag_reads(fake, 2)
    lane(fake)  # taken: the create answer says pending

    for _ in range(2):
        due_now(transfer)
        lane(fake)  # the read shows nothing yet
        order = assert_open(transfer)
        assert transfer.status == TransferStatus.PENDING

    order = pay_by_polling(fake, transfer)
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_duplicate_reference_is_never_a_refusal(fake: PspFake, duplicate_form: str, settings: Any) -> None:
    """The first send's answer is lost (the PSP took it), the look-up lags, the node sends the reference
    again, and the PSP answers "that reference exists" in one of its documented forms while its reads still
    show nothing: the PSP has it, so the transfer is pending there, and nowhere else."""
    if not duplicate_form:
        needs(fake, "duplicate_reference")
        pytest.fail(
            f"{fake_id(type(fake))}: {type(fake).__name__}.duplicate_forms is empty: list every documented "
            "way the PSP says a reference exists, or declare capabilities['duplicate_reference']",
            pytrace=False,
        )
    settings.PSP = [fake.name, "sandbox"]
    script(fake, Send.TIMEOUT_AFTER_COMMIT)
    transfer = start(fake)
    lane(fake)
    settle(fake)
    lag_reads(fake, 3)  # the node's look-up, the adapter's own read after "duplicate", the node's again
    script(fake, Send.PENDING, duplicate_form=duplicate_form)

    later(transfer)
    lane(fake)  # the look-up shows nothing; the re-send is answered "duplicate"

    order = assert_open(transfer)
    assert transfer.status == TransferStatus.PENDING
    assert transfers_of(order) == [(fake.name, 1, transfer.reference, TransferStatus.PENDING)]
    assert not SandboxPayout.objects.exists()
    order = pay_by_polling(fake, transfer)
    assert posts(fake) == 2
    assert not SandboxPayout.objects.exists()
    assert_money_safe(fake, order)


# --- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", list(Refusal), ids=str)
def test_refusal_with_a_second_psp_routed(fake: PspFake, refusal: Refusal, settings: Any) -> None:
    """Recipient invalid: cancelled, never failed over. Funds or limit: the next PSP pays. Down or rate
    limited: unknown, the transfer stays open at this PSP and is read again; never failed over."""
    if fake.name == "sandbox":
        pytest.skip("the sandbox is the kit's second PSP: it cannot fail over to itself")
    settings.PSP = [fake.name, "sandbox"]
    script(fake, refusal)
    transfer = start(fake)

    lane(fake)

    transfer, order = refreshed(transfer)
    assert held_for(fake, order) == []
    if refusal is Refusal.RECIPIENT_INVALID:
        assert (transfer.status, order.status) == (TransferStatus.REJECTED, OrderStatus.CANCELLED)
        assert order.cancel_reason == "Invalid recipient bank details"
        assert list(order.outbox.filter(kind="cancel").values_list("payload", flat=True)) == [
            {"reason": "Invalid recipient bank details"}
        ]
        assert transfers_of(order) == [(fake.name, 1, transfer.reference, TransferStatus.REJECTED)]
        assert not SandboxPayout.objects.exists()
    elif refusal in (Refusal.INSUFFICIENT_FUNDS, Refusal.LIMIT):
        second = Transfer.objects.get(order=order, attempt=2)
        assert transfers_of(order) == [
            (fake.name, 1, transfer.reference, TransferStatus.REJECTED),
            ("sandbox", 2, second.reference, TransferStatus.SUCCEEDED),
        ]
        assert (order.status, order.psp) == (OrderStatus.PAID, "sandbox")
        assert SandboxPayout.objects.get().reference == second.reference
    else:
        order = assert_open(transfer)
        assert (transfer.status, transfer.sends) == (TransferStatus.CREATED, 1)
        due_now(transfer)
        lane(fake)  # read again later, at this PSP only
        order = assert_open(transfer)
        assert transfers_of(order) == [(fake.name, 1, transfer.reference, TransferStatus.CREATED)]
        assert not SandboxPayout.objects.exists()
    assert posts(fake) == 1
    assert_money_safe(fake, order)


@pytest.mark.parametrize("refusal", list(Refusal), ids=str)
def test_refusal_with_no_other_psp(fake: PspFake, refusal: Refusal) -> None:
    """Recipient invalid, funds or limit: cancelled with the reason (nothing was paid). Down or rate
    limited: never cancelled; the same reference is sent again once the look-up shows nothing."""
    script(fake, refusal)
    transfer = start(fake)

    lane(fake)

    transfer, order = refreshed(transfer)
    assert held_for(fake, order) == []
    if refusal is Refusal.RECIPIENT_INVALID:
        assert (transfer.status, order.status) == (TransferStatus.REJECTED, OrderStatus.CANCELLED)
        assert order.cancel_reason == "Invalid recipient bank details"
    elif refusal in (Refusal.INSUFFICIENT_FUNDS, Refusal.LIMIT):
        assert (transfer.status, order.status) == (TransferStatus.REJECTED, OrderStatus.CANCELLED)
        assert order.cancel_reason.startswith("Payout refused: ")
        assert list(order.outbox.filter(kind="cancel").values_list("payload", flat=True)) == [
            {"reason": order.cancel_reason}
        ]
        assert posts(fake) == 1
    else:
        assert_open(transfer)
        script(fake, Send.PENDING)
        later(transfer)
        lane(fake)  # the look-up shows nothing; the PSP is back: the same reference again
        order = assert_open(transfer)
        assert (transfer.status, transfer.sends) == (TransferStatus.PENDING, 2)
        order = pay_by_polling(fake, transfer)
        assert posts(fake) == 2
    assert balance_selectors.balance_get(currency=fake.currency).reserved == 0
    assert_money_safe(fake, order)


def test_rate_limited_the_node_waits_as_long_as_the_psp_asks(fake: PspFake) -> None:
    """A 429's Retry-After (when the PSP sends one) is honoured: the transfer is not read or sent again
    sooner (a PSP hammered while it throttles us may block the account)."""
    script(fake, Refusal.RATE_LIMITED)
    transfer = start(fake)
    asked_at = timezone.now()

    lane(fake)

    settle(fake)
    answers = [answer for request, answer in fake.server.log if fake.is_create(request.path, request.method)]
    wait = http.parse_retry_after(answers[-1].headers.get("Retry-After")) if answers else None
    if wait is None:
        pytest.skip(f"{fake_id(type(fake))} renders RATE_LIMITED without a Retry-After: nothing to honour")
    assert_open(transfer)
    assert transfer.next_check_at is not None
    assert transfer.next_check_at >= asked_at + timedelta(seconds=min(wait, RETRY_AFTER_CAP.total_seconds()))
    assert lane(fake) == 0
    assert posts(fake) == 1


# --- callbacks ------------------------------------------------------------------------------------------


def test_forged_callback_is_refused_and_changes_nothing(fake: PspFake, client: Client) -> None:
    needs(fake, "webhooks")
    needs(fake, "signed_webhooks")
    adapter_has(fake, "parse_webhook", "webhooks")
    script(fake, Send.PENDING)
    transfer = start(fake)
    lane(fake)
    fake.finish(transfer.reference, Status.SUCCEEDED)
    due_at = Transfer.objects.get(pk=transfer.pk).next_check_at

    response = deliver(client, fake, transfer.reference, forged=True)

    assert 400 <= response.status_code < 500, response.status_code
    assert assert_open(transfer).status == OrderStatus.PAYING
    assert transfer.next_check_at == due_at  # not even made due: a forged callback is no hint
    assert not WebhookEvent.objects.filter(signature_valid=True).exists()
    assert lane(fake) == 0
    order = pay_by_polling(fake, transfer)  # the PSP's own answer, in its time
    assert_money_safe(fake, order)


def test_replayed_callback_is_stored_once(fake: PspFake, client: Client) -> None:
    needs(fake, "webhooks")
    adapter_has(fake, "parse_webhook", "webhooks")
    script(fake, Send.PENDING)
    transfer = start(fake)
    lane(fake)
    fake.finish(transfer.reference, Status.SUCCEEDED)

    answers = [deliver(client, fake, transfer.reference) for _ in range(2)]
    lane(fake)
    answers.append(deliver(client, fake, transfer.reference))
    lane(fake)

    assert [(a.status_code, a.json()["message"]) for a in answers] == [
        (200, "Received"),
        (200, "Duplicate event"),
        (200, "Duplicate event"),
    ]
    # The callbacks about this payout (a PSP that answers the node's queries by callback stores those answers
    # too, under the query's own key: they are not replays).
    about_it = WebhookEvent.objects.filter(psp=fake.name, signature_valid=True, reference=transfer.reference)
    assert about_it.count() == 1
    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.SUCCEEDED, OrderStatus.PAID)
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_callback_makes_the_transfer_read_at_once(fake: PspFake, client: Client) -> None:
    needs(fake, "webhooks")
    adapter_has(fake, "parse_webhook", "webhooks")
    script(fake, Send.PENDING)
    transfer = start(fake)
    lane(fake)
    fake.finish(transfer.reference, Status.SUCCEEDED)

    response = deliver(client, fake, transfer.reference)
    lane(fake)  # no time passes: the callback made the transfer due

    assert response.status_code == 200
    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.SUCCEEDED, OrderStatus.PAID)
    assert_money_safe(fake, order)


def test_callback_announcing_what_the_psp_does_not_show_changes_nothing(
    fake: PspFake, client: Client
) -> None:
    """A callback says succeeded (a genuine one, in the PSP's format) while the PSP's read says pending:
    the read wins. The fake renders it by finishing the payout, taking the callback, and putting it back."""
    needs(fake, "webhooks")
    adapter_has(fake, "parse_webhook", "webhooks")
    script(fake, Send.PENDING)
    transfer = start(fake)
    lane(fake)
    fake.finish(transfer.reference, Status.SUCCEEDED)
    early = callback(fake, transfer.reference)
    fake.finish(transfer.reference, Status.PENDING)

    sent = {key: value for key, value in early.headers.items() if key != "CONTENT_TYPE"}
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.generic(early.method, early.path, data=early.body, content_type="application/json", **sent)
    lane(fake)

    order = assert_open(transfer)
    assert transfer.status == TransferStatus.PENDING
    assert not LedgerEntry.objects.filter(order=order, kind=EntryKind.DEBIT).exists()
    order = pay_by_polling(fake, transfer)
    assert_money_safe(fake, order)


def test_stale_failed_callback_after_success_changes_nothing(fake: PspFake, client: Client) -> None:
    """Callbacks come out of order: a "failed" one from before the PSP settled the payout arrives after
    its success. The node reads the PSP, which says succeeded: nothing moves back."""
    needs(fake, "webhooks")
    adapter_has(fake, "parse_webhook", "webhooks")
    script(fake, Send.PENDING)
    transfer = start(fake)
    lane(fake)
    fake.finish(transfer.reference, Status.FAILED)
    stale = callback(fake, transfer.reference)
    fake.finish(transfer.reference, Status.SUCCEEDED)
    deliver(client, fake, transfer.reference)
    lane(fake)
    transfer, order = refreshed(transfer)
    assert order.status == OrderStatus.PAID
    balance = balance_selectors.balance_get(currency=fake.currency)
    entries = LedgerEntry.objects.count()

    sent = {key: value for key, value in stale.headers.items() if key != "CONTENT_TYPE"}
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.generic(
            stale.method, stale.path, data=stale.body, content_type="application/json", **sent
        )
    lane(fake)

    assert response.status_code == 200
    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.SUCCEEDED, OrderStatus.PAID)
    assert fulfil_statuses(order) == ["pending", "success"]
    after = balance_selectors.balance_get(currency=fake.currency)
    assert (after.total, after.reserved, LedgerEntry.objects.count()) == (
        balance.total,
        balance.reserved,
        entries,
    )
    assert posts(fake) == 1
    assert_money_safe(fake, order)


# --- after the payout -------------------------------------------------------------------------------------


def test_reversal_after_success_books_the_money_back(fake: PspFake, client: Client) -> None:
    needs(fake, "reversal")
    transfer = paid(fake)
    total_paid = balance_selectors.balance_get(currency=fake.currency).total

    with provided(fake, "finish(reference, Status.REVERSED)", "reversal"):
        fake.finish(transfer.reference, Status.REVERSED)
    if fake.capabilities.get("webhooks"):
        # No callback: only reconciliation's report (paid_locally_not_at_psp) would tell staff; the read
        # is made due here as a callback would make it.
        psp_services.transfer_mark_due(psp=fake.name, reference=transfer.reference)
    else:
        assert deliver(client, fake, transfer.reference).status_code == 200
    lane(fake)

    transfer, order = refreshed(transfer)
    assert (transfer.status, order.status) == (TransferStatus.REVERSED, OrderStatus.REVERSED)
    assert balance_selectors.balance_get(currency=fake.currency).total == total_paid + order.amount
    kinds = list(LedgerEntry.objects.filter(order=order).order_by("pk").values_list("kind", flat=True))
    assert kinds == [EntryKind.RESERVE, EntryKind.DEBIT, EntryKind.CREDIT]
    assert order_tx_status(order=order)["status"] == "failed"  # type: ignore[index]
    assert lane(fake) == 0  # never sent again
    assert posts(fake) == 1
    assert_money_safe(fake, order)


def test_balance_read_goes_to_psp_balance_and_shows_as_drift_from_the_ledger(fake: PspFake) -> None:
    # Contract change (issue 19): the read used to be applied to the ledger with an ADJUST entry.
    needs(fake, "balance")
    amount = fake.amount * 7
    with provided(fake, "set_balance", "balance"):
        fake.set_balance(fake.currency, amount)

    synced = workflow.balances_sync_psp(psp=fake.name)

    assert synced is not None
    assert fake.currency in synced
    reading = PspBalance.objects.get(psp=fake.name, currency=fake.currency)
    assert (reading.total, reading.available, reading.drift) == (amount, amount, amount)
    assert balance_selectors.balance_get(currency=fake.currency).total == 0
    assert not LedgerEntry.objects.filter(balance__currency=fake.currency).exists()
    assert OutboxMessage.objects.filter(kind="balances", dedupe_key__contains=f":{fake.currency}:").exists()
    assert balance_services.balance_verify() == []


def test_name_resolution_answers_the_holders_name(fake: PspFake) -> None:
    needs(fake, "name_resolution")
    with provided(fake, "name_of", "name_resolution"):
        expected = fake.name_of(fake.account)

    name = psp_services.account_resolve(
        account_identifier=fake.account, institution=fake.institution, currency=fake.currency
    )

    assert name == expected


def test_name_check_before_the_payout_lets_the_holders_own_name_through(fake: PspFake, settings: Any) -> None:
    """With ``PAYOUT_NAME_CHECK=hold`` the payout start resolves the account through the PSP first: the
    order's own holder name passes (or the check is skipped where the PSP cannot resolve), and it pays."""
    settings.PAYOUT_NAME_CHECK = "hold"
    script(fake, Send.PENDING)

    transfer = start(fake)
    lane(fake)

    transfer, order = refreshed(transfer)
    assert (order.status, transfer.status) == (OrderStatus.PAYING, TransferStatus.PENDING)
    order = pay_by_polling(fake, transfer)
    assert_money_safe(fake, order)


def test_bank_list_names_the_institutions_the_psp_pays(fake: PspFake) -> None:
    needs(fake, "bank_list")
    adapter = adapter_has(fake, "list_banks", "bank_list")

    listed = adapter.list_banks(currency=fake.currency)
    synced = [sync for sync in banks.institution_mapping_sync(psp=fake.name, dry_run=True)]

    assert listed, f"{fake.name} lists no institution for {fake.currency}"
    assert all(bank.code.strip() and bank.name.strip() for bank in listed)
    assert len({bank.code for bank in listed}) == len(listed)
    mine = [sync for sync in synced if sync.currency == fake.currency]
    if fake.currency in banks.aggregator_institutions():  # the sync maps the aggregator's institutions
        assert [(sync.error, sync.fetched) for sync in mine] == [("", len(listed))]
    assert [sync for sync in synced if sync.error] == []


# --- the kit itself: what it says about a fake written halfway -------------------------------------------


class HalfWritten(PspFake):
    name = "sandbox"
    variant = "half-written"
    currency = "NGN"
    institution = "ABNGNGLA"
    account = "0123456789"
    account_name = "ADAEZE OKAFOR"
    amount = Decimal("100")

    def node_settings(self) -> dict[str, Any]:
        return {}

    def install(self) -> None:
        pass

    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        raise NotImplementedError("not yet")

    def lag_reads(self, count: int) -> None:
        raise NotImplementedError

    def is_create(self, path: str, method: str) -> bool:
        return False


class HalfWrittenWithoutNetwork(HalfWritten):
    capabilities: ClassVar[dict[str, str]] = {"timeouts": "no network here"}


def test_the_kit_names_what_a_fake_lacks_and_how_to_fix_it() -> None:
    fake = HalfWritten(server=None)  # type: ignore[arg-type]

    with pytest.raises(pytest.fail.Exception) as lost_answer:
        script(fake, Send.TIMEOUT_AFTER_COMMIT)
    with pytest.raises(pytest.fail.Exception) as refusal:
        script(fake, Refusal.RECIPIENT_INVALID)
    with pytest.raises(pytest.fail.Exception) as no_callback:
        callback(fake, "pn-1")

    assert str(lost_answer.value) == (
        "sandbox-half-written: HalfWritten.script_send(timeout_after_commit) is missing (not yet): implement "
        "it, or declare capabilities['timeouts'] with the reason the PSP has none"
    )
    assert str(refusal.value) == (
        "sandbox-half-written: HalfWritten.script_send(recipient_invalid) is missing (not yet): implement it "
        "(every PSP has this)"
    )
    assert str(no_callback.value).startswith("sandbox-half-written: HalfWritten.callback(forged=False) is")
    assert str(no_callback.value).endswith(
        "declare capabilities['webhooks'] with the reason the PSP has none"
    )


def test_the_kit_skips_what_a_fake_declares_absent_with_its_reason() -> None:
    fake = HalfWrittenWithoutNetwork(server=None)  # type: ignore[arg-type]

    with pytest.raises(pytest.skip.Exception) as skipped:
        script(fake, Send.TIMEOUT_BEFORE_COMMIT)

    assert str(skipped.value) == "sandbox-half-written has no timeouts: no network here"


def test_the_kit_names_an_adapter_method_the_suite_needs(settings: Any) -> None:
    settings.PSP = ["sandbox"]
    registry.adapter.cache_clear()

    with pytest.raises(pytest.fail.Exception) as missing:
        adapter_has(HalfWritten(server=None), "list_banks", "bank_list")  # type: ignore[arg-type]

    assert str(missing.value) == (
        "sandbox-half-written: the 'sandbox' adapter (SandboxAdapter) does not implement list_banks, and "
        "HalfWritten does not declare capabilities['bank_list']"
    )
