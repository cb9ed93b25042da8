"""The floor: the cheapest useful request in the project's own stack (same middleware, DRF parser,
renderer and exception handler): validate a 10-field body with a serializer and insert one row."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.models import FloorRow
from orders.api import ORDER_ID_PATTERN, AmountField, CurrencyField
from provision import responses


class FloorApi(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        orderId = serializers.RegexField(ORDER_ID_PATTERN)
        amount = AmountField()
        currency = CurrencyField()
        institution = serializers.CharField(max_length=32)
        accountIdentifier = serializers.CharField(max_length=64)
        accountName = serializers.CharField(max_length=255)
        memo = serializers.CharField(max_length=512, allow_blank=True)
        token = serializers.CharField(max_length=32)
        network = serializers.CharField(max_length=64)
        reference = serializers.CharField(max_length=128)

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        row = FloorRow.objects.create(
            order_id=data["orderId"],
            amount=data["amount"],
            currency=data["currency"],
            institution=data["institution"],
            account_identifier=data["accountIdentifier"],
            account_name=data["accountName"],
            memo=data["memo"],
            token=data["token"],
            network=data["network"],
            reference=data["reference"],
        )
        return responses.success("Stored", {"id": row.pk})
