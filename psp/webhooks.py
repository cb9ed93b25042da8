"""PSP webhooks: verify, store raw, deduplicate, answer 200 fast, then make the transfer due for a read.

A webhook is a hint: the payout lane reads the transfer's status from the PSP by our reference before
the order moves (many webhooks about one transfer: one read). MTN MoMo callbacks are unsigned and carry
our reference in the URL path (``/webhooks/mtn_momo/<reference>``); the view passes it to the adapter as
the ``X-Callback-Reference`` header.

M-Pesa Daraja callbacks (``MpesaCallbackApi``) are unsigned too and come to a URL carrying a secret token
(``/webhooks/daraja/<token>/<kind>/<key>``): a wrong token is a 404 and nothing is stored. A payment's
callback is a hint like any webhook; a Transaction Status or Account Balance result is the answer to a
query the node sent (its URL names the query), recorded by ``mpesa_callback_process``, which then makes
the transfer due so the payout lane reads that answer.

What is stored of each delivery, and for how long, is ``psp.services.webhooks``'s business; every delivery
is counted in ``provision_webhooks_total`` by outcome, stored or not.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from provision import metrics, queue, responses
from provision.auth import raw_body
from provision.errors import NotFound
from psp import registry
from psp import services as psp_services
from psp.base import PspError, WebhookBodyRefused, WebhookSignatureInvalid
from psp.clients import mpesa
from psp.models import Transfer, WebhookEvent
from psp.services import webhooks as webhook_services
from psp.services.webhooks import StoreOutcome

logger = logging.getLogger(__name__)


def _kick(event_pk: int) -> None:
    queue.enqueue("psp.tasks.webhook_process", task_name=f"webhook:{event_pk}", event_pk=event_pk)


class PspWebhookApi(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def post(self, request: Request, psp: str, reference: str = "") -> Response:
        if psp not in settings.PSP:
            raise NotFound("Unknown PSP", errors={"psp": [f"{psp!r} is not enabled on this node."]})
        body = raw_body(request)
        headers = {key: value for key, value in request.headers.items()}
        if reference:
            headers["X-Callback-Reference"] = reference
        adapter = registry.adapter(psp)
        try:
            notice = adapter.parse_webhook(body=body, headers=headers)
        except WebhookSignatureInvalid:
            metrics.WEBHOOKS.labels(psp=psp, outcome="invalid_signature").inc()
            webhook_services.webhook_refusal_record(psp=psp, body=body)
            return responses.error("Invalid webhook signature", {"code": "invalid_signature"}, status=401)
        except WebhookBodyRefused as exc:  # hostile bytes: refused, not stored (they may not even encode)
            metrics.WEBHOOKS.labels(psp=psp, outcome="malformed").inc()
            return responses.error(exc.message, {"code": "malformed_body", "errors": {"body": [exc.message]}})
        except PspError as exc:
            metrics.WEBHOOKS.labels(psp=psp, outcome="ignored").inc()
            logger.info("webhook.unsupported", extra={"psp": psp, "reason": exc.message[:200]})
            return responses.success("Ignored", {"reason": exc.message[:200]})
        stored = webhook_services.webhook_event_store(
            psp=psp, notice=notice, body=body, signed=adapter.webhooks_signed
        )
        metrics.WEBHOOKS.labels(psp=psp, outcome=stored.outcome).inc()
        if stored.outcome == StoreOutcome.DUPLICATE:
            logger.info("webhook.duplicate", extra={"psp": psp, "event_id": notice.event_id})
            return responses.success("Duplicate event", None)
        if stored.event is None:
            # Answered like a stored callback: a different answer would tell anyone which references
            # (hence which orders) this node paid through the PSP.
            logger.info(
                "webhook.not_stored",
                extra={"psp": psp, "reference": notice.reference, "outcome": str(stored.outcome)},
            )
            return responses.success("Received", None)
        _kick(stored.event.pk)
        return responses.success("Received", None)

    def put(self, request: Request, psp: str, reference: str = "") -> Response:
        """MTN MoMo may deliver its callback as PUT as well as POST (protocol/mtn-momo.md section 11)."""
        return self.post(request, psp, reference)


def webhook_process(*, event_pk: int) -> str:
    """Make the referenced transfer due for a read by the payout lane (the webhook is a hint: the lane
    reads the transfer from the PSP by reference before the order moves). Safe to run twice."""
    event = WebhookEvent.objects.get(pk=event_pk)
    if event.processed_at is not None:
        return event.outcome
    transfer = Transfer.objects.filter(psp=event.psp, reference=event.reference).first()
    if transfer is None:
        outcome = "no_such_transfer"
    elif psp_services.transfer_mark_due(psp=event.psp, reference=event.reference):
        outcome = "read_due"
    else:
        outcome = f"already:{transfer.status}"
    WebhookEvent.objects.filter(pk=event_pk, processed_at__isnull=True).update(
        processed_at=timezone.now(), outcome=outcome
    )
    logger.info("webhook.processed", extra={"psp": event.psp, "event_id": event.event_id, "outcome": outcome})
    return outcome


# --- M-Pesa Daraja ---------------------------------------------------------------------------------------

# What Daraja is answered (its B2C pages document no answer; integrations send this) [protocol section 5].
MPESA_ACKNOWLEDGEMENT = {"ResultCode": 0, "ResultDesc": "Accepted"}


def _mpesa_adapter() -> mpesa.MpesaAdapter | None:
    if mpesa.NAME not in settings.PSP:
        return None
    adapter = registry.adapter(mpesa.NAME)
    return adapter if isinstance(adapter, mpesa.MpesaAdapter) else None


class MpesaCallbackApi(APIView):
    """Daraja's Result and QueueTimeOut callbacks: the URL's token checked (``parse_webhook``), stored raw,
    acknowledged, processed in a task. A wrong token, an unknown kind (or M-Pesa not enabled) is a 404:
    nothing stored, nothing processed (a scanner learns nothing)."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    schema = None  # the URL is a secret: not in the public OpenAPI schema

    def post(self, request: Request, token: str, kind: str, key: str) -> Response:
        adapter = _mpesa_adapter()
        if adapter is None:
            raise NotFound("Not found")
        body = raw_body(request)
        headers = {mpesa.TOKEN_HEADER: token, mpesa.KIND_HEADER: kind, mpesa.KEY_HEADER: key}
        try:
            notice = adapter.parse_webhook(body=body, headers=headers)
        except WebhookSignatureInvalid:
            metrics.WEBHOOKS.labels(psp=mpesa.NAME, outcome="invalid_signature").inc()
            logger.warning("mpesa.callback.wrong_token", extra={"psp": mpesa.NAME, "kind": kind[:32]})
            raise NotFound("Not found") from None
        except PspError as exc:
            raise NotFound("Not found", errors={"kind": [exc.message]}) from None
        # The secret URL token authenticates the callback, so it is stored like a signed webhook.
        stored = webhook_services.webhook_event_store(psp=mpesa.NAME, notice=notice, body=body, signed=True)
        event = stored.event
        if stored.outcome == StoreOutcome.DUPLICATE or event is None:
            metrics.WEBHOOKS.labels(psp=mpesa.NAME, outcome="duplicate").inc()
            logger.info("webhook.duplicate", extra={"psp": mpesa.NAME, "event_id": notice.event_id})
            return _mpesa_acknowledgement("Duplicate event")
        metrics.WEBHOOKS.labels(psp=mpesa.NAME, outcome="received").inc()
        queue.enqueue("psp.tasks.mpesa_callback_process", task_name=f"webhook:{event.pk}", event_pk=event.pk)
        return _mpesa_acknowledgement("Received")


def _mpesa_acknowledgement(message: str) -> Response:
    """The node's usual envelope plus what integrations answer Daraja (Safaricom documents no answer for a
    B2C ResultURL; Daraja reads the HTTP status, if anything)."""
    return Response({"status": "success", "message": message, "data": None, **MPESA_ACKNOWLEDGEMENT})


def mpesa_callback_process(*, event_pk: int) -> str:
    """Record what a stored Daraja callback says (a hint, or a query's answer), then make the payout's
    transfer due for a read. Safe to run twice."""
    event = WebhookEvent.objects.get(pk=event_pk)
    if event.processed_at is not None:
        return event.outcome
    adapter = _mpesa_adapter()
    if adapter is None:
        outcome = "psp_disabled"
    else:
        recorded = adapter.callback_record(
            kind=event.event_type, key=event.reference, body=event.body.encode("utf-8")
        )
        outcome = recorded.outcome
        if recorded.reference and psp_services.transfer_mark_due(
            psp=mpesa.NAME, reference=recorded.reference
        ):
            outcome = f"{outcome}:read_due"
    WebhookEvent.objects.filter(pk=event_pk, processed_at__isnull=True).update(
        processed_at=timezone.now(), outcome=outcome[:64]
    )
    logger.info(
        "webhook.processed", extra={"psp": mpesa.NAME, "event_id": event.event_id, "outcome": outcome}
    )
    return outcome
