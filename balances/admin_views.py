"""The balances page: node vs PSP and the difference per currency and PSP, with the last sync time.

Read-only. It needs the permissions to see both sides (``balances.view_balance`` and
``balances.view_pspbalance``: every staff role has them).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from balances import reconciliation

PERMISSIONS = ("balances.view_balance", "balances.view_pspbalance")


def reconciliation_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not request.user.has_perms(PERMISSIONS):
        raise PermissionDenied
    lines = reconciliation.balance_reconciliation()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Balances: node vs PSP",
        "opts": model_admin.model._meta,
        "lines": lines,
        "drifting": [line.currency for line in lines if line.difference not in (None, 0)],
    }
    return TemplateResponse(request, "admin/balances/balance/reconciliation.html", context)
