"""Unauthenticated node endpoints the contract defines: GET /health and GET /info."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from balances import selectors as balance_selectors
from provision import responses


class HealthApi(APIView):
    def get(self, request: Request) -> Response:
        return responses.success("Node is live", {"currencies": settings.CURRENCIES})


class InfoApi(APIView):
    def get(self, request: Request) -> Response:
        return responses.success("Node info", balance_selectors.node_info())
