"""The OpenAPI schema (``GET /api/schema/``) and a reference page rendered from it (``GET /api/docs/``).

drf-spectacular's Swagger UI and Redoc pages load their JavaScript from a CDN unless the separate
``drf-spectacular-sidecar`` package is installed; the node has no business making an operator's browser
fetch code from a third party, so ``/api/docs/`` is a plain server-rendered page instead (no JavaScript,
no external request): every operation with its authentication, parameters, request and answers, and
the schemas they refer to. Tools should read ``/api/schema/`` (JSON, or ``?format=yaml``).

The schema is generated once per process (the code cannot change under a running process).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

_METHODS = ("get", "post", "put", "patch", "delete")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return dict(SchemaGenerator().get_schema(request=None, public=True))


class SchemaApi(SpectacularAPIView):
    """JSON by default (no Accept, ``*/*``); YAML for ``?format=yaml``.

    The Accept header is negotiated (unlike the rest of the API): ``application/json`` and
    ``application/vnd.oai.openapi+json`` get JSON, ``application/yaml`` and ``application/vnd.oai.openapi``
    YAML, each under the media type asked for. Listing only the ``vnd.oai`` renderers answered a plain
    ``Accept: application/json`` (what most HTTP clients and code generators send) with 406.
    """

    renderer_classes = [OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer, OpenApiYamlRenderer2]
    content_negotiation_class = DefaultContentNegotiation

    def _get_schema_response(self, request: Request) -> Response:
        filename = f"provision-node.{self.perform_content_negotiation(request, force=True)[0].format}"
        return Response(data=schema(), headers={"Content-Disposition": f'inline; filename="{filename}"'})


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    operations = []
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody", {}).get("content", {})
            operations.append(
                {
                    "anchor": operation.get("operationId", f"{method}-{path}"),
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "tags": operation.get("tags", []),
                    "security": [
                        " + ".join(requirement) or "none"
                        for requirement in operation.get("security", [])
                        if isinstance(requirement, dict)
                    ]
                    or ["none"],
                    "parameters": [
                        {
                            "name": p.get("name"),
                            "where": p.get("in"),
                            "required": p.get("required", False),
                            "schema": _pretty(p.get("schema", {})),
                            "description": p.get("description", ""),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "request": [
                        {"media_type": media_type, "schema": _pretty(content.get("schema", {}))}
                        for media_type, content in body.items()
                    ],
                    "responses": [
                        {
                            "code": code,
                            "description": answer.get("description", ""),
                            "schema": _pretty(_first_schema(answer)),
                        }
                        for code, answer in operation.get("responses", {}).items()
                    ],
                }
            )
    return operations


def _first_schema(answer: dict[str, Any]) -> Any:
    for content in answer.get("content", {}).values():
        return content.get("schema", {})
    return {}


class ApiDocsApi(APIView):
    """The page, as an API view so it is rate-limited (the ``api_docs`` scope, shared with the schema)."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return _docs_page(request._request)


def _docs_page(request: HttpRequest) -> HttpResponse:
    document = schema()
    context = {
        "info": document.get("info", {}),
        "operations": _operations(document),
        "security_schemes": [
            {"name": name, "definition": _pretty(definition)}
            for name, definition in document.get("components", {}).get("securitySchemes", {}).items()
        ],
        "schemas": [
            {"name": name, "schema": _pretty(definition)}
            for name, definition in document.get("components", {}).get("schemas", {}).items()
        ],
    }
    return render(request, "provision/api_docs.html", context)
