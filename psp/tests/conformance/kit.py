"""The adapter conformance kit: one suite every PSP adapter runs against its own real-HTTP fake.

A PSP is added by writing its adapter, its settings block, and a ``PspFake`` here (``fakes/<name>.py``,
listed in ``fakes.FAKES``). The suite (``test_conformance.py``) drives an order through the real services
and the payout lane against the fake, scripting the fake call by call, and asserts the node's rules
(README "Guarantees"): money leaves once; a send that may have reached the PSP is ended only by the PSP's
own answer about its reference; refusals before money moved are final, and only those; webhooks are
hints; reversals are booked back. What a PSP cannot do is declared in ``capabilities`` with the reason
(the kit skips those tests and prints the reason); anything the kit needs that a fake neither implements
nor declares is reported as missing (the test fails and names it).

A fake is a real local HTTP server (pytest-httpserver's ``HTTPServer``, one per test) speaking the PSP's
wire format (its protocol document in ../shared/protocol/), with state of its own (the payouts it holds)
and a script for the next calls. The kit talks to it only through this interface. The suite's server is
threaded (a handler that holds back a lost answer does not hold up the look-up that follows) and shared by
the tests, cleared between them; ``fakes/wire.py`` has the pieces the HTTP fakes share (a call script, the
client timeout to put in ``node_settings`` and the delay of a lost answer).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from pytest_httpserver import HTTPServer


class Send(enum.StrEnum):
    """What the fake does with the next payout request (create call) it receives."""

    PENDING = "pending"  # takes the payout and answers that it is in progress
    SUCCEEDED = "succeeded"  # takes it and answers final success (a PSP that never does: answer pending)
    TIMEOUT_AFTER_COMMIT = "timeout_after_commit"  # takes it; the answer comes after the client gave up
    TIMEOUT_BEFORE_COMMIT = "timeout_before_commit"  # does not take it; answers after the client gave up


class Refusal(enum.StrEnum):
    """The classes of refusal every PSP has, in its own words (the fake renders each one)."""

    RECIPIENT_INVALID = "recipient_invalid"  # no such account / wallet: final, no failover
    INSUFFICIENT_FUNDS = "insufficient_funds"  # our float is short: final, another PSP may pay
    LIMIT = "limit"  # an amount or velocity limit: final, another PSP may pay
    SERVICE_DOWN = "service_down"  # the PSP says it cannot process now (5xx or its own code): unknown
    RATE_LIMITED = "rate_limited"  # 429 (or its own code) with a Retry-After: unknown, read again later


class Status(enum.StrEnum):
    """A payout's state at the fake."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"


@dataclass
class FakePayout:
    reference: str  # our reference (the idempotency key the adapter sent)
    amount: Decimal
    currency: str
    account: str
    status: Status = Status.PENDING
    psp_id: str = ""  # the PSP's own transaction id


@dataclass(frozen=True)
class Callback:
    """A webhook / callback as the PSP would deliver it to the node."""

    path: str  # on the node, e.g. "/webhooks/paystack" or "/webhooks/mpesa/<token>/result"
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # Django test-client style: HTTP_X_...
    method: str = "POST"


# The capabilities the suite needs. A fake declares each one it does not have, with the reason:
# capabilities = {"reversal": "M-Pesa has no reversal event; a reversal is a separate C2B"}.
CAPABILITIES = (
    "webhooks",  # the PSP calls back about payouts (Callback); forged/replayed/out-of-order are tested
    "signed_webhooks",  # those callbacks carry a signature the adapter verifies
    "reversal",  # the PSP can take back a payout after success
    "balance",  # the PSP tells our balance
    "name_resolution",  # the PSP resolves an account holder's name
    "bank_list",  # the PSP lists the institutions it pays
    "synchronous_success",  # a create call can answer final success
    # Added with the suite (a fake that does not declare them has them):
    "timeouts",  # the fake can lose a create call's answer (Send.TIMEOUT_AFTER_COMMIT, TIMEOUT_BEFORE_COMMIT)
    "read_lag",  # reads by reference can show nothing for a payout the PSP holds (lag_reads)
    "duplicate_reference",  # the PSP answers "that reference exists" (duplicate_forms)
    "outages",  # the PSP can say it cannot take a call now (Refusal.SERVICE_DOWN, Refusal.RATE_LIMITED)
)


class PspFake(abc.ABC):
    """One PSP, faked over real HTTP for the conformance suite. Subclass it in ``fakes/<name>.py``."""

    name: ClassVar[str]  # the adapter's name (a key of settings.PSP_ADAPTERS)
    # Tells apart two fakes of one adapter (Lenco's v1 and v2 APIs: "ngn", "mwk-momo"); the test id is
    # ``fake_id(fake)``: the name, or "name-variant".
    variant: ClassVar[str] = ""
    # A payable order for this PSP: what the aggregator would send.
    currency: ClassVar[str]
    institution: ClassVar[str]
    account: ClassVar[str]  # a valid account / MSISDN for the institution
    account_name: ClassVar[str]
    amount: ClassVar[Decimal]
    # Capability -> why the PSP does not have it (absent: it has it).
    capabilities: ClassVar[Mapping[str, str]] = {}
    # Every documented way this PSP says "that reference / id already exists" (each is scripted and tested).
    duplicate_forms: ClassVar[tuple[str, ...]] = ()

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.payouts: dict[str, FakePayout] = {}

    # --- wiring ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def node_settings(self) -> dict[str, Any]:
        """Settings that point the node's adapter at this fake (base URLs, credentials, short timeouts:
        the client must give up on a TIMEOUT_* answer within about a second)."""

    def institution_mappings(self) -> list[tuple[str, str]]:
        """(aggregator institution code, PSP code) rows the adapter needs (InstitutionMapping)."""
        return []

    @abc.abstractmethod
    def install(self) -> None:
        """Register the fake's handlers on ``self.server`` (every path the adapter calls)."""

    def order_account(self) -> str:
        """The account the suite's next order pays: ``account``. A PSP whose outcomes follow the recipient
        (the sandbox's magic account numbers) returns the one that gives what ``script_send`` scripted (the
        suite scripts an order's first send before it creates the order)."""
        return self.account

    # --- scripting the next calls ----------------------------------------------------------------------

    @abc.abstractmethod
    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        """What the next create call gets. ``duplicate_form``: answer that the reference already exists,
        in that documented form (one of ``duplicate_forms``), instead of ``behaviour``."""

    @abc.abstractmethod
    def lag_reads(self, count: int) -> None:
        """The next ``count`` reads by reference answer "not found" even for a payout the fake holds."""

    def finish(self, reference: str, status: Status) -> None:
        """The PSP completes, fails or reverses a payout it holds."""
        self.payouts[reference].status = status

    # --- what the PSP holds and tells -----------------------------------------------------------------

    def held(self) -> list[FakePayout]:
        return list(self.payouts.values())

    def posts(self) -> int:
        """How many create calls reached the fake (duplicates and refusals included)."""
        return sum(1 for request, _ in self.server.log if self.is_create(request.path, request.method))

    @abc.abstractmethod
    def is_create(self, path: str, method: str) -> bool:
        """Whether a request is this PSP's create (payout) call."""

    def callback(self, reference: str, *, forged: bool = False) -> Callback:
        """The callback the PSP would send for the payout's current status; ``forged``: as an attacker
        would send it (bad or no signature, or whatever the PSP's authentication would refuse).
        Fakes of PSPs without callbacks declare ``capabilities["webhooks"]`` instead."""
        raise NotImplementedError

    def query_answers(self) -> list[Callback]:
        """The answers the PSP owes to queries the node sent and answers by callback instead of in the HTTP
        answer (M-Pesa's Transaction Status: a read is a query, then a POST to the node). The suite delivers
        them through the node's view after each lane run, as the PSP would a moment after the query, and
        runs the lane again. Default: none (the PSP's reads answer in their HTTP answer)."""
        return []

    def set_balance(self, currency: str, amount: Decimal) -> None:
        """The balance the PSP reports for ``currency``."""
        raise NotImplementedError

    def name_of(self, account: str) -> str:
        """The holder's name the PSP resolves for ``account`` (the order's account by default)."""
        return self.account_name


def fake_id(fake: type[PspFake]) -> str:
    """The fake's test id: its adapter's name, with its variant when it has one."""
    return f"{fake.name}-{fake.variant}" if fake.variant else fake.name


F = TypeVar("F", bound=PspFake)


@contextmanager
def served(fake_class: type[F]) -> Iterator[F]:
    """A fake on its own threaded server, installed: a running node's web, worker and payout lane may
    call it at once (the end-to-end tests)."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    fake = fake_class(server)
    fake.install()
    try:
        yield fake
    finally:
        server.clear()
        server.stop()
