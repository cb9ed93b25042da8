"""Aggregator-facing order endpoints: intake in both flavours, /tx_status and /verify_account.

Views are thin: validate the body, call one service or selector, answer the envelope. They make no
outbound HTTP call except /verify_account, whose answer is the PSP's (503 when the PSP is down).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from balances import money
from orders import selectors, services
from orders.models import Flavour, Order
from provision import responses
from provision.auth import HmacAuthorizationAuthentication, RequestSignatureAuthentication
from provision.errors import NotFound, Refused, Unavailable

ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class AmountField(serializers.Field[Decimal, Any, Any, Any]):
    """A positive amount: a plain ASCII decimal string ("3750", "1500.25") or, in the seed flavour, a JSON
    number (736.155) taken by its exact value. At most 4 decimals and at most 99999999999.9999; more
    precision is refused, never rounded (``balances.money.amount_parse``)."""

    default_error_messages = {
        "invalid": 'Must be a positive plain decimal: ASCII digits 0-9 and at most one ".", with no sign, '
        'spaces, underscores or exponent, e.g. "3750" or "1500.25".',
        "max_places": f"Must have at most {money.MONEY_DECIMAL_PLACES} decimal places "
        "(more would be rounded by the database).",
        "max_value": f"Must be at most {money.MAX_AMOUNT}.",
    }

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return money.amount_parse(data)
        except money.AmountRefused as exc:
            self.fail(exc.code)

    def to_representation(self, value: Decimal) -> str:
        return str(value)


class CurrencyField(serializers.RegexField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            r"^[A-Za-z]{3,7}$", error_messages={"invalid": "Must be a currency code like NGN."}, **kwargs
        )

    def to_internal_value(self, data: Any) -> str:
        return str(super().to_internal_value(data)).upper()


def _order_answer(order: Order, created: bool) -> Response:
    data = {"orderId": order.order_id, "status": "pending", "state": order.status}
    return responses.success("Order received" if created else "Order already received", data)


class NewOrderApi(APIView):
    """POST /new_order — the Go aggregator's offer: {amount, currency, institution, orderId, excludePsps?}."""

    authentication_classes = [RequestSignatureAuthentication]
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        orderId = serializers.RegexField(ORDER_ID_PATTERN)
        amount = AmountField()
        currency = CurrencyField()
        institution = serializers.CharField(max_length=32)
        excludePsps = serializers.ListField(
            child=serializers.CharField(max_length=32), required=False, allow_null=True, max_length=20
        )

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        offer = services.Offer(
            order_id=data["orderId"],
            flavour=Flavour.NEW_ORDER,
            amount=data["amount"],
            currency=data["currency"],
            institution=data["institution"],
            exclude_psps=list(data.get("excludePsps") or []),
            accept_deadline=timezone.now() + timedelta(seconds=settings.ORDER_REQUEST_VALIDITY),
        )
        order, created = services.order_receive(offer=offer)
        return _order_answer(order, created)


class SeedOrderApi(APIView):
    """POST /orders — the seed documents' flavour: the full order, HMAC Authorization with a timestamp."""

    authentication_classes = [HmacAuthorizationAuthentication]
    permission_classes = [IsAuthenticated]

    class RecipientSerializer(serializers.Serializer[dict[str, Any]]):
        institution = serializers.CharField(max_length=32)
        accountIdentifier = serializers.CharField(max_length=64)
        accountName = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
        memo = serializers.CharField(max_length=512, required=False, allow_blank=True, default="")

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        orderId = serializers.RegexField(ORDER_ID_PATTERN)
        amount = AmountField()
        currency = CurrencyField()
        token = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
        tokenAmount = AmountField(required=False)
        network = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
        recipient = serializers.DictField()
        reference = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
        expiresAt = serializers.DateTimeField()
        timestamp = serializers.IntegerField(required=False)

        def validate_recipient(self, value: dict[str, Any]) -> dict[str, Any]:
            nested = SeedOrderApi.RecipientSerializer(data=value)
            nested.is_valid(raise_exception=True)
            return dict(nested.validated_data)

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order, created = services.order_receive(
            offer=services.offer_from_seed(dict(serializer.validated_data))
        )
        return _order_answer(order, created)


class TxStatusApi(APIView):
    """POST /tx_status — {orderId | reference, currency?, psp?, txId?} → pending | success | failed.

    ``orderId`` (fork) names the order by its exact id and nothing else. ``reference`` (upstream) is the
    order id too; failing an order with that id, it names the one seed-flavour order with that seed
    reference. 404 when no order matches (or the node never accepted it); 409 ``ambiguous_reference``
    when several seed orders share the reference: the node answers for no order it cannot tell apart.
    """

    authentication_classes = [RequestSignatureAuthentication]
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        orderId = serializers.CharField(max_length=128, required=False)
        reference = serializers.CharField(max_length=128, required=False)
        currency = serializers.CharField(max_length=7, required=False, allow_blank=True)
        psp = serializers.CharField(max_length=64, required=False, allow_blank=True)
        txId = serializers.CharField(max_length=128, required=False, allow_blank=True)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not attrs.get("orderId") and not attrs.get("reference"):
                raise serializers.ValidationError({"orderId": ["orderId or reference is required."]})
            return attrs

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = selectors.order_find(
            order_id=serializer.validated_data.get("orderId", ""),
            reference=serializer.validated_data.get("reference", ""),
        )
        data = selectors.order_tx_status(order=order) if order else None
        if data is None:
            raise NotFound("Order not found", errors={"orderId": ["This node never accepted this order."]})
        return responses.success("Transaction status", data)


class VerifyAccountApi(APIView):
    """POST /verify_account — {accountIdentifier, institution} → the account holder's name as ``data``."""

    authentication_classes = [RequestSignatureAuthentication]
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        accountIdentifier = serializers.CharField(max_length=64)
        institution = serializers.CharField(max_length=32)
        currency = CurrencyField(required=False)

    def post(self, request: Request) -> Response:
        from psp import services as psp_services
        from psp.base import PspRejected, PspUnavailable

        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            name = psp_services.account_resolve(
                account_identifier=data["accountIdentifier"],
                institution=data["institution"],
                currency=data.get("currency") or "NGN",
            )
        except PspRejected as exc:
            raise Refused(
                "Could not verify account", errors={"accountIdentifier": [exc.message]}, code=exc.reason
            ) from exc
        except PspUnavailable as exc:
            raise Unavailable("Account resolution is unavailable; try again") from exc
        return responses.success("Account name retrieved", name)
