"""The financial report in admin: ``/admin/orders/order/report/``, on screen and as CSV.

Anyone who may see the orders may see the report (``orders.view_order``): it adds up what the order list
shows. The numbers come from ``orders.reports`` (aggregated in SQL); this module only reads the form and
writes the page or the file.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from orders import reports
from provision.csv_export import DateRangeForm, csv_response
from provision.formatting import money_plain


def _currency_choices() -> list[tuple[str, str]]:
    return [("", "All"), *((c, c) for c in settings.CURRENCIES)]


def _psp_choices() -> list[tuple[str, str]]:
    return [("", "All"), *((p, p) for p in [*settings.PSP_ADAPTERS, "manual"])]


class ReportForm(DateRangeForm):
    currency = forms.ChoiceField(required=False, choices=_currency_choices)
    psp = forms.ChoiceField(label="PSP", required=False, choices=_psp_choices)


CSV_HEADER = ("day", "currency", "psp", "count", "volume", "fees", "fees_reported")


def report_csv_rows(report: reports.FinancialReport) -> list[list[object]]:
    return [
        [
            row.day,
            row.currency,
            row.psp,
            row.count,
            money_plain(row.volume, row.currency),
            money_plain(row.fees, row.currency),
            row.fees_reported,
        ]
        for row in report.rows
    ]


class FinancialReportMixin(admin.ModelAdmin):
    """Adds the report page to the order admin."""

    def get_urls(self) -> list[Any]:
        own: list[URLPattern] = [
            path(
                "report/", self.admin_site.admin_view(self.financial_report_view), name="orders_order_report"
            )
        ]
        return own + super().get_urls()

    def financial_report_view(self, request: HttpRequest) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.copy()
        query.pop("format", None)
        if not any(name in query for name in ("start", "end")):  # first visit: the last seven days
            for name, day in DateRangeForm.initial_range().items():
                query[name] = day.isoformat()
        form = ReportForm(query)
        report = None
        if form.is_valid():
            data = form.cleaned_data
            report = reports.financial_report(
                start=data["start"], end=data["end"], currency=data["currency"], psp=data["psp"]
            )
            if request.GET.get("format") == "csv":
                return csv_response(
                    f"financial-report-{data['start']:%Y%m%d}-{data['end']:%Y%m%d}.csv",
                    CSV_HEADER,
                    report_csv_rows(report),
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Financial report",
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "csv_query": f"{query.urlencode()}&format=csv",
        }
        return TemplateResponse(request, "admin/orders/order/financial_report.html", context)
