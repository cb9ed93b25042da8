"""Content-Security-Policy on every answer (Django 5.2 has none built in).

A small middleware rather than a package: the node needs one fixed policy and nothing django-csp adds
(nonces, per-view policies, report-only switching), because no page of ours carries inline script or
style. The setting has the shape of Django 6.0's own (``SECURE_CSP``: directive -> list of sources), so
moving to ``django.middleware.csp.ContentSecurityPolicyMiddleware`` later is deleting this module.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def policy_header(policy: dict[str, list[str]]) -> str:
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy: dict[str, list[str]] = getattr(settings, "SECURE_CSP", {})
        if policy and HEADER not in response:
            response[HEADER] = policy_header(policy)
        return response
