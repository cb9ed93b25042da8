"""The sandbox PSP, driven through its own scripting (psp/sandbox.py): there is no HTTP between the node and
it, so the fake is its ``SandboxPayout`` rows, its magic account numbers and its settings.

* A send's outcome follows the order's account (``order_account``): ``...9999`` stays pending until the
  test finishes it, ``...0000``/``3333``/``4444`` are refused at once (recipient invalid, insufficient
  funds, limit), any other account succeeds at once (``SANDBOX_LATENCY_SECONDS`` = 0).
* ``finish`` writes the payout's row as an operator would in admin; ``callback`` is the signed webhook the
  sandbox would send for the row (``psp.sandbox.webhook_body``).
* Its balance is ``SANDBOX_BALANCES`` less its successful payouts: the dict given in ``node_settings`` is
  the one the adapter reads, and ``set_balance`` changes it.
* ``posts`` counts the node's create calls into the sandbox adapter from the node's own PSP-call metric
  (a refusal leaves no row).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.utils import timezone
from prometheus_client import REGISTRY

from psp import sandbox
from psp.clients.lenco import webhook_signature
from psp.models import SandboxPayout
from psp.tests.conformance.kit import Callback, FakePayout, PspFake, Refusal, Send, Status

WEBHOOK_SECRET = "kit-sandbox-webhook-secret"
IN_DATABASE = "the sandbox lives in the node's database: no network between the node and it"
_SUFFIX: dict[Send | Refusal, str] = {
    Send.PENDING: "9999",
    Send.SUCCEEDED: "6789",
    Refusal.RECIPIENT_INVALID: "0000",
    Refusal.INSUFFICIENT_FUNDS: "3333",
    Refusal.LIMIT: "4444",
}
_ROW_STATUS = {
    Status.PENDING: "stuck",
    Status.SUCCEEDED: "successful",
    Status.FAILED: "failed",
    Status.REVERSED: "reversed",
}
_STATUS = {row: status for status, row in _ROW_STATUS.items()}
_OUTCOMES = ("ok", "rejected", "unavailable", "error")


def _create_calls() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "provision_psp_call_seconds_count",
            {"psp": "sandbox", "operation": "initiate_payout", "outcome": outcome},
        )
        or 0.0
        for outcome in _OUTCOMES
    )


class SandboxFake(PspFake):
    name = "sandbox"
    currency = "NGN"
    institution = "ABNGNGLA"
    account = "0123456789"
    account_name = "SANDBOX ACCOUNT 6789"
    amount = Decimal("15000")
    capabilities: ClassVar[dict[str, str]] = {
        "timeouts": f"{IN_DATABASE}, so a call never loses its answer",
        "read_lag": f"{IN_DATABASE}: a read sees every committed payout",
        "duplicate_reference": (
            f"{IN_DATABASE}: a send never loses its answer, so the node never sends a reference twice"
        ),
        "outages": "the sandbox is part of the node: it is down only when the node is, and has no rate limit",
        "bank_list": "the sandbox pays any institution of a currency it holds: it has no bank list",
    }

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.next_send: Send | Refusal = Send.SUCCEEDED
        self.balances: dict[str, Decimal] = {self.currency: Decimal("50000000")}
        self.create_calls_before = _create_calls()

    def node_settings(self) -> dict[str, Any]:
        return {
            "SANDBOX_BALANCES": self.balances,  # the same dict: set_balance changes what the sandbox reads
            "SANDBOX_LATENCY_SECONDS": 0,
            "SANDBOX_FAILURE_RATE": Decimal("0"),
            "SANDBOX_WEBHOOK_URL": "",  # the suite delivers callbacks itself
            "SANDBOX_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }

    def install(self) -> None:
        """Nothing to serve: the sandbox is in the node's database."""

    def order_account(self) -> str:
        return self.account[:-4] + _SUFFIX[self.next_send]

    def script_send(self, behaviour: Send | Refusal, *, duplicate_form: str = "") -> None:
        if duplicate_form or behaviour not in _SUFFIX:
            raise NotImplementedError(f"the sandbox cannot answer {duplicate_form or behaviour}")
        self.next_send = behaviour

    def lag_reads(self, count: int) -> None:
        raise NotImplementedError("the sandbox's reads never lag")

    def finish(self, reference: str, status: Status) -> None:
        row_status = _ROW_STATUS[status]
        failure = "Transfer Not Successful" if status == Status.FAILED else ""
        updated = SandboxPayout.objects.filter(reference=reference).update(
            status=row_status, failure_message=failure, complete_at=timezone.now()
        )
        assert updated == 1, f"the sandbox holds no payout {reference}"

    def held(self) -> list[FakePayout]:
        return [
            FakePayout(
                reference=row.reference,
                amount=row.amount,
                currency=row.currency,
                account=row.account_identifier,
                status=_STATUS.get(row.status, Status.PENDING),
                psp_id=row.transaction_id,
            )
            for row in SandboxPayout.objects.order_by("pk")
        ]

    def posts(self) -> int:
        return int(_create_calls() - self.create_calls_before)

    def is_create(self, path: str, method: str) -> bool:
        return False

    def callback(self, reference: str, *, forged: bool = False) -> Callback:
        body = sandbox.webhook_body(SandboxPayout.objects.get(reference=reference))
        key = "not-the-sandbox-secret" if forged else WEBHOOK_SECRET
        return Callback(
            path="/webhooks/sandbox",
            body=body,
            headers={
                "CONTENT_TYPE": "application/json",
                "HTTP_X_SANDBOX_SIGNATURE": webhook_signature(body=body, api_key=key),
            },
        )

    def set_balance(self, currency: str, amount: Decimal) -> None:
        paid = sum(
            (
                row.amount
                for row in SandboxPayout.objects.filter(currency=currency, status="successful")
                if row.complete_at <= timezone.now()
            ),
            Decimal("0"),
        )
        self.balances[currency] = amount + paid

    def name_of(self, account: str) -> str:
        return f"SANDBOX ACCOUNT {account[-4:]}"
