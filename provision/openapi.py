"""OpenAPI 3 description of the aggregator-facing and webhook API (drf-spectacular), kept out of the views.

The views in ``orders.api``, ``psp.webhooks`` and ``provision.views`` stay as they are; this module
describes them with drf-spectacular extensions, which the schema generator picks up by class path:

* ``OpenApiAuthenticationExtension`` for the two aggregator authentication classes (``provision.auth``);
* ``OpenApiSerializerFieldExtension`` for ``orders.api.AmountField`` (a plain decimal string, its limits);
* one ``OpenApiViewExtension`` per view: a subclass with ``extend_schema`` on its method, used only by
  the generator (requests still reach the original view).

Request bodies are the views' own ``InputSerializer`` classes (renamed per view so their components do
not collide), so the schema follows the validation. Answers use the contract's envelope
``{"status", "message", "data"}``; every error is ``ErrorEnvelope`` (``provision.exception_handler``).
Served at ``/api/schema/`` (JSON; ``?format=yaml`` for YAML) and rendered without any CDN at
``/api/docs/``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
    OpenApiViewExtension,
)
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

ERROR_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer: a stable machine-readable data.code, field errors when any.",
    "required": ["status", "message", "data"],
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "message": {"type": "string"},
        "data": {
            "type": "object",
            "required": ["code"],
            "properties": {
                "code": {"type": "string"},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "requestId": {"type": "string"},
            },
        },
    },
}
ERROR_ENVELOPE = OpenApiResponse({"$ref": "#/components/schemas/ErrorEnvelope"}, description="Error")
DECIMAL_STRING: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]+)?$",
    "description": "A non-negative decimal amount as a string, never a JSON number.",
    "example": "50000",
}


def envelope(data: dict[str, Any], *, status: str = "success") -> dict[str, Any]:
    """The contract's answer ``{"status", "message", "data"}`` with ``data`` described by ``data``."""
    return {
        "type": "object",
        "required": ["status", "message", "data"],
        "properties": {
            "status": {"type": "string", "enum": [status]},
            "message": {"type": "string"},
            "data": data,
        },
    }


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERROR_ENVELOPE for code in codes}


ORDER_RECEIVED = OpenApiResponse(
    envelope(
        {
            "type": "object",
            "required": ["orderId", "status", "state"],
            "properties": {
                "orderId": {"type": "string"},
                "status": {"type": "string", "enum": ["pending"]},
                "state": {"type": "string", "description": "The node's own state of the order."},
            },
        }
    ),
    description="Received (or already received: same answer, no second order)",
)
TX_STATUS = OpenApiResponse(
    envelope(
        {
            "type": "object",
            "required": ["status", "psp", "txId"],
            "properties": {
                "status": {"type": "string", "enum": ["pending", "success", "failed"]},
                "psp": {"type": "string", "description": "Empty until a transfer exists."},
                "txId": {"type": "string", "description": "Empty until a transfer exists."},
                "error": {"type": "string", "description": "Present when status is failed."},
            },
        }
    ),
    description="What the node knows about an order it accepted",
)
ACCOUNT_NAME = OpenApiResponse(
    envelope({"type": "string", "minLength": 1, "description": "The account holder's name."}),
    description="Account name retrieved",
)
_BALANCE_PAIR = {
    "type": "object",
    "required": ["availableBalance", "totalBalance"],
    "properties": {"availableBalance": DECIMAL_STRING, "totalBalance": DECIMAL_STRING},
}
INFO = OpenApiResponse(
    envelope(
        {
            "type": "object",
            "required": ["serviceInfo", "totalBalances", "balances"],
            "properties": {
                "serviceInfo": {
                    "type": "object",
                    "required": ["currencies", "version", "lastUpdated", "totalPSPs"],
                    "properties": {
                        "currencies": {"type": "array", "items": {"type": "string"}},
                        "version": {"type": "string"},
                        "lastUpdated": {"type": "string", "format": "date-time"},
                        "totalPSPs": {"type": "integer", "minimum": 0},
                        "mode": {"type": "string", "enum": ["auto", "manual"]},
                    },
                },
                "totalBalances": {"type": "object", "additionalProperties": _BALANCE_PAIR},
                "balances": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["psp", "availableBalance", "totalBalance", "status", "snapshotTime"],
                        "properties": {
                            "psp": {"type": "string"},
                            "currency": {"type": "string"},
                            "availableBalance": DECIMAL_STRING,
                            "totalBalance": DECIMAL_STRING,
                            "status": {"type": "string"},
                            "snapshotTime": {"type": "string", "format": "date-time"},
                        },
                    },
                },
            },
        }
    ),
    description="Capabilities and balances, every field in the JSON type the Go aggregator decodes",
)
HEALTH = OpenApiResponse(
    envelope(
        {
            "type": "object",
            "required": ["currencies"],
            "properties": {"currencies": {"type": "array", "items": {"type": "string"}}},
        }
    ),
    description="Live",
)
WEBHOOK_ANSWER = OpenApiResponse(
    envelope({"nullable": True, "description": "null, or why the event was ignored."}),
    description="Stored (or a duplicate, or an event the node ignores): the PSP should stop retrying",
)
ANY_JSON_OBJECT = {"type": "object", "additionalProperties": True, "description": "The PSP's own payload."}


# --- authentication ----------------------------------------------------------------------------------


class RequestSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "provision.auth.RequestSignatureAuthentication"
    name = "RequestSignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-Request-Signature",
            "description": "Lowercase hex HMAC-SHA256 of the raw body bytes (not of a re-marshal), keyed "
            "with the provider secret's UTF-8 bytes (how the Go aggregator calls /new_order, /tx_status, "
            "/verify_account).",
        }


class HmacAuthorizationScheme(OpenApiAuthenticationExtension):
    target_class = "provision.auth.HmacAuthorizationAuthentication"
    name = "HmacAuthorization"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`HMAC <client_id>:<hex>`: HMAC-SHA256 of the body's bytes or, for bodies of "
            "at most 8 KB nested at most 8 deep, of its Go-canonical re-marshal; the body carries an "
            "integer `timestamp` no older than HMAC_TIMESTAMP_AGE; each signature is accepted once. "
            "Every authentication failure is the same 401 `Authentication failed`.",
        }


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "orders.api.AmountField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        from balances import money

        return {
            "type": "string",
            "pattern": rf"^[0-9]{{1,{money.MONEY_EXACT_DIGITS - money.MONEY_DECIMAL_PLACES}}}"
            rf"(\.[0-9]{{1,{money.MONEY_DECIMAL_PLACES}}})?$",
            "description": "A positive amount as a plain decimal string: ASCII digits 0-9 and at most one "
            '".", with digits on both sides; no sign, spaces, underscores, exponent or other scripts\' '
            f"digits. At most {money.MONEY_DECIMAL_PLACES} decimal places (more is refused, never rounded) "
            f"and at most {money.MAX_AMOUNT} (15 significant digits: what every supported database stores "
            "exactly). The seed flavour (POST /orders) may send a JSON number instead (736.155); it is "
            "taken by its exact decimal value under the same limits.",
            "example": "3750",
        }


# --- views -------------------------------------------------------------------------------------------


def _view(extension: OpenApiViewExtension) -> Any:
    """The view class the extension targets (a dotted path until drf-spectacular has loaded it)."""
    return extension.target_class


def _named(base: type[serializers.Serializer[Any]], name: str, **fields: Any) -> type:
    """A same-fields subclass with its own component name (every view's serializer is ``InputSerializer``)."""
    return type(name, (base,), {"__module__": __name__, **fields})


class NewOrderApiSchema(OpenApiViewExtension):
    target_class = "orders.api.NewOrderApi"

    def view_replacement(self) -> type:
        request = _named(_view(self).InputSerializer, "NewOrder")
        return extend_schema_view(
            post=extend_schema(
                operation_id="new_order",
                summary="Offer an order (the Go aggregator)",
                description="Deduplicated by orderId. The recipient is not in the offer: it arrives in "
                "the aggregator's answer to accept.",
                tags=["aggregator"],
                request=request,
                responses={200: ORDER_RECEIVED, **_errors(400, 401, 409, 413, 429)},
            )
        )(type("NewOrderApi", (_view(self),), {}))


class SeedOrderApiSchema(OpenApiViewExtension):
    target_class = "orders.api.SeedOrderApi"

    def view_replacement(self) -> type:
        recipient = _named(_view(self).RecipientSerializer, "SeedRecipient")
        request = _named(_view(self).InputSerializer, "SeedOrder", recipient=recipient())
        return extend_schema_view(
            post=extend_schema(
                operation_id="seed_order",
                summary="Offer an order (seed flavour: full order, HMAC Authorization with a timestamp)",
                tags=["aggregator"],
                request=request,
                responses={200: ORDER_RECEIVED, **_errors(400, 401, 409, 413, 429)},
            )
        )(type("SeedOrderApi", (_view(self),), {}))


class TxStatusApiSchema(OpenApiViewExtension):
    target_class = "orders.api.TxStatusApi"

    def view_replacement(self) -> type:
        request = _named(_view(self).InputSerializer, "TxStatus")
        return extend_schema_view(
            post=extend_schema(
                operation_id="tx_status",
                summary="What happened to an order this node accepted",
                description="orderId (fork) or reference (upstream). 404 only for orders the node "
                "never accepted; success only for orders it paid.",
                tags=["aggregator"],
                request=request,
                responses={200: TX_STATUS, **_errors(400, 401, 404, 413, 429)},
            )
        )(type("TxStatusApi", (_view(self),), {}))


class VerifyAccountApiSchema(OpenApiViewExtension):
    target_class = "orders.api.VerifyAccountApi"

    def view_replacement(self) -> type:
        request = _named(_view(self).InputSerializer, "VerifyAccount")
        return extend_schema_view(
            post=extend_schema(
                operation_id="verify_account",
                summary="Resolve an account holder's name through the PSP",
                tags=["aggregator"],
                request=request,
                responses={200: ACCOUNT_NAME, **_errors(400, 401, 413, 422, 429, 503)},
            )
        )(type("VerifyAccountApi", (_view(self),), {}))


class InfoApiSchema(OpenApiViewExtension):
    target_class = "provision.views.InfoApi"

    def view_replacement(self) -> type:
        return extend_schema_view(
            get=extend_schema(
                operation_id="info",
                summary="Capabilities and balances (no authentication)",
                tags=["aggregator"],
                responses={200: INFO, **_errors(429)},
            )
        )(type("InfoApi", (_view(self),), {}))


class HealthApiSchema(OpenApiViewExtension):
    target_class = "provision.views.HealthApi"

    def view_replacement(self) -> type:
        return extend_schema_view(
            get=extend_schema(
                operation_id="health",
                summary="Live (the contract's health answer, no authentication)",
                tags=["health"],
                responses={200: HEALTH, **_errors(429)},
            )
        )(type("HealthApi", (_view(self),), {}))


PSP_PARAMETER = OpenApiParameter(
    "psp",
    str,
    OpenApiParameter.PATH,
    enum=["sandbox", "lenco", "mtn_momo"],
    description="The PSP posting the event; 404 when it is not enabled on this node.",
)
REFERENCE_PARAMETER = OpenApiParameter(
    "reference",
    str,
    OpenApiParameter.PATH,
    description="Our transfer reference (MTN MoMo callbacks carry it in the path).",
)


class PspWebhookApiSchema(OpenApiViewExtension):
    target_class = "psp.webhooks.PspWebhookApi"

    def view_replacement(self) -> type:
        def described(method: str) -> Any:
            return extend_schema(
                summary=f"A PSP's webhook ({method}): verified, stored raw, deduplicated, processed later",
                description="The signature is the PSP's own scheme (e.g. X-Lenco-Signature, "
                "X-Sandbox-Signature); MTN MoMo callbacks are unsigned (POST or PUT, our reference in "
                "the path) and are re-read from the PSP before anything moves. A body nested deeper than "
                "32 levels, not UTF-8, or holding a lone surrogate escape is refused with 400 "
                "(`malformed_body`) and not stored.",
                tags=["webhooks"],
                parameters=[PSP_PARAMETER, REFERENCE_PARAMETER],
                request={"application/json": ANY_JSON_OBJECT},
                responses={200: WEBHOOK_ANSWER, **_errors(400, 401, 404, 413, 429)},
            )

        methods = {name: described(name.upper()) for name in ("post", "put") if hasattr(_view(self), name)}
        return extend_schema_view(**methods)(type("PspWebhookApi", (_view(self),), {}))


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add the shared ``ErrorEnvelope`` component; give the two webhook routes (one view) their own
    operation ids and drop ``reference`` from the one-segment route."""
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE_SCHEMA
    names = {"/webhooks/{psp}": "psp_webhook", "/webhooks/{psp}/{reference}": "psp_callback"}
    for path, item in result.get("paths", {}).items():
        if path not in names:
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["operationId"] = names[path] + ("" if method == "post" else f"_{method}")
            if path == "/webhooks/{psp}":
                operation["parameters"] = [
                    p for p in operation.get("parameters", []) if p.get("name") != "reference"
                ]
    return result


def register() -> None:
    """Nothing to do: defining the extension classes above registers them. Called so the import is
    explicit (``provision.hooks``)."""
