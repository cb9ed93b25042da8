"""M-Pesa Daraja B2C: KES payouts to M-Pesa wallets (institution ``SAFAKEPC``).

Contract: ``protocol/mpesa-daraja.md``. Everything Daraja tells about a payment arrives asynchronously, as
a POST to a callback URL; there is no synchronous read anywhere. What this adapter decides:

* **References.** ``OriginatorConversationID`` is our client reference (``psp.references``: ``pn`` + the
  order UUID's 32 hex digits + ``-<attempt>``, or ``pnh`` + a 26-hex-digit hash for other ids and attempts
  past 9), at most 36 characters of ``[0-9a-z-]``. It is persisted (``DarajaRequest``, and the node's
  Transfer) before the POST. UNCONFIRMED: Daraja's response table says "less than 20 characters" while
  its own samples are 25 and 36 long; we follow the samples. Were 36 refused, Daraja would answer
  ``400.002.02`` before queueing anything: the first send is then rejected (no money moved) and the
  order fails over or is cancelled, never paid twice.
* **Callbacks** come to ``<MPESA_CALLBACK_BASE_URL>/webhooks/daraja/<MPESA_CALLBACK_TOKEN>/<kind>/<key>``
  (the view refuses a wrong token with 404 and stores nothing). The path avoids the words Daraja forbids
  in C2B callback URLs (``mpesa``, ``query``, ...): whether B2C enforces that rule is UNCONFIRMED, so we
  obey it either way. Callbacks are unsigned and not retried, so none of them is trusted as an answer:
  a payment's Result or QueueTimeOut callback is only a hint that makes the transfer due for a read.
* **Reads** (``get_payout``) are Transaction Status queries, whose result also comes by callback. A query
  carries a random key in its callback URLs (``DarajaRequest.key``), so its answer is bound to the query
  the node sent, over a URL only Safaricom was told. ``get_payout`` returns the last answer recorded for
  the reference, and sends a new query unless the read was made due by a query's answer it has not used
  yet (see ``_query_due``): each answer serves one read, the lane's next read asks again, and a lost
  callback is replaced by that next query. A duplicate refusal of a send is followed at once by a query
  (protocol section 7). Until Safaricom has said
  something it answers PENDING when Daraja accepted a send of the reference (or a previous status
  answer showed it), and raises ``PspUnavailable`` otherwise (nothing is known yet: the node keeps the
  transfer open and reads again). NOT_FOUND only when a status answer newer than the last send says the
  reference does not exist; FAILED only when a status answer says Cancelled, Declined or Expired.
* **Balance** (``get_balances``) is an Account Balance query for the Utility account (the one B2C
  debits); the lane's thread waits for its callback (``MPESA_BALANCE_WAIT_SECONDS``). Waiting, not
  returning an earlier reading, keeps the balance sync's rule that a reading is newer than the ledger
  position it is applied against (a payout made after an older reading would otherwise count twice the
  other way: the total would err high).
* **Token** (``psp.daraja``): one per Daraja app, in the database, shared by every process; a 401
  (``401.002.01``/``400.003.01``, "Invalid Access Token") expires it and repeats the call once. For the
  B2C POST that repeat is safe: a refused token means nothing was queued, and the repeat carries the
  same OriginatorConversationID.
* **Limits.** Whole KES from 10 to 250,000 per payment (``MPESA_MIN_AMOUNT``/``MPESA_MAX_AMOUNT``), as
  ``amount_refusal``: routing declines or reroutes an order M-Pesa would refuse before it is accepted.
  Whether ``Amount`` may carry decimals is UNCONFIRMED: a fractional amount is refused (``UNPAYABLE``)
  rather than rounded, and the aggregator sends fiat amounts rounded to whole units anyway.
* **No name look-up** before paying exists in B2C: ``resolve_account`` refuses (UNSUPPORTED).

The other points protocol/mpesa-daraja.md marks UNCONFIRMED, and how either answer is handled:

* QueueTimeOut body (undocumented): never parsed for a decision. A payment's QueueTimeOut is a hint
  (the next read queries the status); a query's is "no answer" (the next read asks again). Either way,
  a payment that did or did not go through is settled only by a status answer.
* Whether Result callbacks are retried: assumed not. No decision waits for a payment's callback, and a
  query whose callback never comes is replaced by the next read's query (``_query_due``).
* ``500.002.1001`` also reported as "System internal error.": only the duplicate text is a duplicate
  (``wire.is_duplicate``); the other text is an unknown outcome, looked up like a timeout.
* Callback source IPs (a list circulates, not on Safaricom's pages): not enforced here. Whether Safaricom
  posts from those addresses or not, the secret path token and the status-query confirmation hold.
* ``Occassion`` vs ``Occasion``: the field is optional, so neither spelling is sent.
* Timeouts and rate limits (not published): explicit connect/read timeouts (a read timeout on the POST
  is an unknown outcome); throttling (``500.003.02``/``500.003.03``, as HTTP 500) is PspUnavailable, so
  the lane backs off and the same id is looked up, never re-sent blind.
* ``expires_in`` as a number or a string, ``ResultCode``/``ResultType`` as numbers or strings: both read
  (``http.decimal_or_none``, ``wire.code_text``).
* The second party-name key of a status result (``CreditPartyName``?): not read.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from psp.clients.mpesa.adapter import CallbackRecord, MpesaAdapter, MpesaConfig
from psp.clients.mpesa.wire import (
    CALLBACK_PREFIX,
    KEY_HEADER,
    KIND_HEADER,
    NAME,
    TOKEN_HEADER,
    CallbackKind,
    callback_key_valid,
    msisdn_of,
    security_credential,
)

__all__ = [
    "CALLBACK_PREFIX",
    "KEY_HEADER",
    "KIND_HEADER",
    "NAME",
    "TOKEN_HEADER",
    "CallbackKind",
    "CallbackRecord",
    "MpesaAdapter",
    "MpesaConfig",
    "build_adapter",
    "callback_key_valid",
    "msisdn_of",
    "security_credential",
]


def build_adapter() -> MpesaAdapter:
    """The M-Pesa Daraja B2C adapter from settings (``MPESA_*``)."""
    credential = settings.MPESA_SECURITY_CREDENTIAL or security_credential(
        password=settings.MPESA_INITIATOR_PASSWORD,
        certificate=Path(settings.MPESA_CERTIFICATE_PATH).read_bytes(),
    )
    return MpesaAdapter(
        MpesaConfig(
            base_url=settings.MPESA_BASE_URL,
            consumer_key=settings.MPESA_CONSUMER_KEY,
            consumer_secret=settings.MPESA_CONSUMER_SECRET,
            shortcode=settings.MPESA_SHORTCODE,
            initiator_name=settings.MPESA_INITIATOR_NAME,
            security_credential=credential,
            callback_base_url=settings.MPESA_CALLBACK_BASE_URL,
            callback_token=settings.MPESA_CALLBACK_TOKEN,
            timeout=settings.MPESA_TIMEOUT_SECONDS,
            min_amount=settings.MPESA_MIN_AMOUNT,
            max_amount=settings.MPESA_MAX_AMOUNT,
            balance_wait=settings.MPESA_BALANCE_WAIT_SECONDS,
        )
    )
