"""PSP-side records: payout attempts, webhook events, institution mapping, and the sandbox PSP's state.

Objects
    Transfer            one row per payout attempt, written *before* the PSP is called; its
                        ``reference`` is the PSP idempotency key, derived from the order and attempt.
    WebhookEvent        a webhook as received (raw body), unique on (psp, event_id): every verified one
                        (unsigned callbacks: only about a transfer of ours, a bounded number per
                        transfer) and a bounded sample of refused ones; purged after their retention.
    WebhookRefusals     per PSP: how many deliveries were refused for a bad signature (ever, and in the
                        current clock hour, which bounds the refused sample).
    InstitutionMapping  the aggregator's institution code -> the PSP's bank/operator code.
    PspRoute            which adapter may pay which currency/institution, in which order (ops edit it).
    SandboxPayout       the sandbox PSP's own ledger of payouts (the sandbox *is* a PSP).
    PspCircuit          the circuit breaker of one PSP, shared by every web and worker process.
    PspRecipient        a payee registered at a PSP that pays saved recipients (Paystack's ``RCP_…``
                        codes): created once per (type, institution, account, currency), then reused.
    DarajaToken         M-Pesa Daraja's one OAuth token per app, shared by every process (``psp.daraja``).
    DarajaRequest       one asynchronous Daraja request (a B2C payment, a Transaction Status or an Account
                        Balance query) and what its Result callback answered.

Circuit states (``psp.health``)::

    closed --PSP_BREAKER_FAILURES consecutive PspUnavailable--> open
    open --PSP_BREAKER_COOLDOWN elapsed, a new payout claims the probe--> half_open
    half_open / open past the cool-down --the next call succeeds--> closed
    half_open / open past the cool-down --the next call fails--> open (cool-down starts again)

    Only *new* payouts look at the circuit; look-ups of transfers already at a PSP always go to it.

Invariants (constraints)
    * (psp, reference) is unique: the same reference is never sent for two payouts.
    * An order has at most one live transfer: only a transfer REJECTED by the PSP before it took the money
      lets another attempt exist (failover). This is what makes "at most one payout per order" hold even
      when two workers race.
    * REJECTED only follows a refusal of the transfer's first and only send. Once a send may have reached
      the PSP, only the PSP's own answer about the reference (a read, or a webhook confirmed by a read)
      makes it final: a refused re-send, a read that shows nothing, or a timeout leave it open (polled,
      then staff review). PENDING and SUCCEEDED never move back.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from balances.models import money_field


class TransferStatus(models.TextChoices):
    CREATED = "created", "Created (not sent yet, or sent and not answered)"
    PENDING = "pending", "Pending at the PSP"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (final)"
    REJECTED = "rejected", "Rejected before sending money"
    UNKNOWN = "unknown", "Outcome unknown (review)"
    REVERSED = "reversed", "Reversed by the PSP after success"


LIVE_TRANSFER_STATES = (
    TransferStatus.CREATED,
    TransferStatus.PENDING,
    TransferStatus.SUCCEEDED,
    TransferStatus.FAILED,
    TransferStatus.UNKNOWN,
)


class Transfer(models.Model):
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="transfers")
    psp = models.CharField(max_length=32)
    attempt = models.PositiveSmallIntegerField(default=1)
    reference = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=TransferStatus.choices, default=TransferStatus.CREATED, db_index=True
    )
    amount = money_field()
    currency = models.CharField(max_length=7)
    fee = money_field(null=True, blank=True)
    account_masked = models.CharField(max_length=64, blank=True)
    psp_institution = models.CharField(max_length=64, blank=True)
    psp_transaction_id = models.CharField(max_length=128, blank=True)
    failure_reason = models.CharField(max_length=32, blank=True)
    failure_message = models.CharField(max_length=512, blank=True)
    sends = models.PositiveIntegerField(default=0, help_text="How many times the create call was sent.")
    last_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the latest send started (no other send within its lease)."
    )
    resend_refused = models.BooleanField(
        default=False,
        help_text="The PSP refused a re-send of this reference: only reads (or a webhook) may end it now.",
    )
    history = models.JSONField(default=list, blank=True)
    last_response = models.JSONField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [
            models.Index(fields=["psp", "created_at"], name="transfer_psp_created"),
            # psp.health: final failures in the failure-rate window, without reading the PSP's volume
            models.Index(fields=["psp", "status", "created_at"], name="transfer_psp_status_created"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["psp", "reference"], name="transfer_unique_reference"),
            models.UniqueConstraint(fields=["order", "attempt"], name="transfer_unique_attempt"),
            models.UniqueConstraint(
                fields=["order"],
                condition=~Q(status="rejected"),
                name="transfer_one_live_per_order",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.psp}:{self.reference} ({self.status})"


class WebhookEvent(models.Model):
    psp = models.CharField(max_length=32)
    event_id = models.CharField(max_length=128)
    event_type = models.CharField(max_length=64, blank=True)
    reference = models.CharField(max_length=64, blank=True, db_index=True)
    body = models.TextField()
    signature_valid = models.BooleanField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["received_at"], name="webhook_received_at")]  # the purge
        constraints = [models.UniqueConstraint(fields=["psp", "event_id"], name="webhook_unique_event")]

    def __str__(self) -> str:
        return f"{self.psp}:{self.event_id}"


class WebhookRefusals(models.Model):
    """Refused webhook deliveries of one PSP: a running total (never purged, so the metric read from it
    only grows) and the count of the current clock hour. Written only by ``psp.services.webhooks``."""

    psp = models.CharField(max_length=32, unique=True)
    total = models.PositiveBigIntegerField(default=0)
    hour_start = models.DateTimeField()
    hour_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["psp"]
        verbose_name_plural = "webhook refusals"

    def __str__(self) -> str:
        return f"refusals:{self.psp} ({self.total})"


class InstitutionMapping(models.Model):
    psp = models.CharField(max_length=32)
    currency = models.CharField(max_length=7)
    institution = models.CharField(max_length=32, help_text="The aggregator's code, e.g. ABNGNGLA.")
    institution_name = models.CharField(max_length=255, blank=True)
    psp_code = models.CharField(max_length=64, help_text="The PSP's bank code or operator.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["psp", "currency", "institution"]
        constraints = [
            models.UniqueConstraint(fields=["psp", "institution"], name="institution_mapping_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.psp}:{self.institution}->{self.psp_code}"


class SandboxPayout(models.Model):
    """The sandbox PSP's record of a payout it was asked to make (keyed by our reference)."""

    reference = models.CharField(max_length=64, unique=True)
    transaction_id = models.CharField(max_length=64, unique=True)
    amount = money_field()
    currency = models.CharField(max_length=7)
    account_identifier = models.CharField(max_length=64)
    status = models.CharField(max_length=16)
    failure_message = models.CharField(max_length=255, blank=True)
    complete_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"sandbox:{self.reference} ({self.status})"


class PspRoute(models.Model):
    """Which adapter may pay which currency and institution, and in which order: data ops see and edit.

    A route matches an order when its currency does and its ``institution`` pattern matches the order's
    institution code (``*`` and ``?`` as in shell patterns: ``SAFAKEPC``, ``AIRT*PC``, ``*``). An order's
    candidates are the matching enabled routes, the most specific pattern first (no wildcard, then
    patterns, then ``*``), then by ``priority``. With no route for the currency at all, the PSPs of the
    ``PSP`` setting are tried in their order (so a node with only the sandbox needs no route).
    """

    currency = models.CharField(max_length=7, db_index=True)
    institution = models.CharField(
        max_length=32,
        default="*",
        help_text="The aggregator's institution code or a pattern: SAFAKEPC, AIRT*PC, *.",
    )
    psp = models.CharField(max_length=32, help_text="The adapter's name (as in the PSP setting).")
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower goes first.")
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["currency", "priority", "institution", "psp"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "institution", "psp"], name="psp_route_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.currency} {self.institution} -> {self.psp} ({self.priority})"


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed (calls flow)"
    OPEN = "open", "Open (no new payouts)"
    HALF_OPEN = "half_open", "Half-open (one probe in flight)"


class PspCircuit(models.Model):
    """The circuit breaker of one PSP. Rows are written only through ``psp.health``, with atomic updates."""

    psp = models.CharField(max_length=32, unique=True)
    state = models.CharField(max_length=16, choices=CircuitState.choices, default=CircuitState.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    probe_at = models.DateTimeField(
        null=True, blank=True, help_text="When the half-open probe was let through."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["psp"]
        permissions = [("close_pspcircuit", "Can close a PSP circuit (the PSP is back)")]

    def __str__(self) -> str:
        return f"circuit:{self.psp} ({self.state})"


class PspRecipient(models.Model):
    """A payee the PSP has on file (Paystack's transfer recipient), created once and reused for every payout
    to the same account. Written only through ``psp.recipients``; the account number itself stays on the
    order (here only its SHA-256 and its last four digits)."""

    psp = models.CharField(max_length=32)
    kind = models.CharField(max_length=32, help_text="The PSP's recipient type, e.g. nuban, ghipss.")
    institution_code = models.CharField(max_length=64, help_text="The PSP's bank or operator code.")
    account_key = models.CharField(max_length=64, help_text="SHA-256 (hex) of the account number.")
    account_masked = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=7)
    recipient_code = models.CharField(max_length=64, help_text="The PSP's id of the recipient (RCP_…).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["psp", "kind", "institution_code", "account_key", "currency"],
                name="psp_recipient_unique_account",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.psp}:{self.recipient_code}"


class DarajaToken(models.Model):
    """The OAuth token of one Daraja app (consumer key), shared by every process of the node.

    Daraja invalidates an app's previous token whenever it issues a new one, so processes that each
    fetched their own would log each other out. One row per app; refreshed through a lease
    (``refreshing_until``) that one process claims with a conditional UPDATE (``psp.daraja``)."""

    app = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the base URL and consumer key.")
    access_token = models.CharField(max_length=512, blank=True)
    generation = models.PositiveIntegerField(default=0, help_text="Incremented by every new token.")
    refresh_at = models.DateTimeField(null=True, blank=True, help_text="A new token is fetched from here on.")
    expires_at = models.DateTimeField(null=True, blank=True)
    refreshing_until = models.DateTimeField(
        null=True, blank=True, help_text="A process is fetching a new token (its lease)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["app"]

    def __str__(self) -> str:
        return f"daraja-token:{self.app[:12]} (generation {self.generation})"


class DarajaRequestKind(models.TextChoices):
    PAYMENT = "payment", "B2C payment"
    STATUS = "status", "Transaction Status query"
    BALANCE = "balance", "Account Balance query"


class DarajaSend(models.TextChoices):
    """What Daraja's synchronous HTTP answer said about a request."""

    NO_ANSWER = "", "No answer (not sent yet, timeout, 5xx)"
    ACCEPTED = "accepted", "Accepted for processing (ResponseCode 0)"
    DUPLICATE = "duplicate", "Refused as a duplicate OriginatorConversationID (Daraja has it)"
    REFUSED = "refused", "Refused (nothing was queued)"


class DarajaAnswer(models.TextChoices):
    """What a query's Result callback said (blank: no callback yet)."""

    SUCCEEDED = "succeeded", "The payment is Completed"
    FAILED = "failed", "The payment is in a final failed state"
    PENDING = "pending", "The payment exists and is not final"
    NOT_FOUND = "not_found", "Daraja has no payment with this OriginatorConversationID"
    BALANCE = "balance", "A balance reading"
    ERROR = "error", "The query itself failed (no answer about the payment)"
    TIMEOUT = "timeout", "QueueTimeOut: the query timed out in Daraja's queue"
    UNSENT = "unsent", "The query was not accepted by the gateway"


class DarajaRequest(models.Model):
    """One asynchronous Daraja request and the answer its Result callback brought.

    Written *before* the HTTP call (a payment's row is its OriginatorConversationID persisted before the
    POST); the callback URL of a query carries the row's random ``key``, so an answer is bound to the
    query the node sent. A row is answered once (``answered_at``); later callbacks for it are ignored.
    """

    kind = models.CharField(max_length=16, choices=DarajaRequestKind.choices)
    key = models.CharField(
        max_length=64, unique=True, help_text="Random; the query's callback URL carries it."
    )
    reference = models.CharField(max_length=64, blank=True, db_index=True, help_text="Our payout reference.")
    amount = money_field(null=True, blank=True, help_text="The amount a payment asked for.")
    sent_at = models.DateTimeField()
    send = models.CharField(
        max_length=16, choices=DarajaSend.choices, blank=True, default=DarajaSend.NO_ANSWER
    )
    conversation_id = models.CharField(max_length=64, blank=True, help_text="Daraja's ConversationID.")
    hinted_at = models.DateTimeField(
        null=True, blank=True, help_text="A payment's Result or QueueTimeOut callback arrived (a hint)."
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(
        null=True, blank=True, help_text="A read of the payout first used this query's answer."
    )
    answer = models.CharField(max_length=16, choices=DarajaAnswer.choices, blank=True)
    result_code = models.CharField(max_length=32, blank=True)
    result_desc = models.CharField(max_length=255, blank=True)
    transaction_status = models.CharField(max_length=32, blank=True)
    receipt = models.CharField(max_length=64, blank=True)
    result_amount = money_field(null=True, blank=True)
    fee = money_field(null=True, blank=True)
    balance_currency = models.CharField(max_length=7, blank=True)
    balance = money_field(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["reference", "sent_at"], name="daraja_request_reference")]

    def __str__(self) -> str:
        return f"daraja:{self.kind}:{self.key}"
