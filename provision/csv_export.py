"""CSV exports from admin lists: the rows the list shows (its filters and search), for a date range.

``CsvExportMixin`` gives a model admin an ``export/`` page, linked from the list's "Export CSV" button
with the list's query string. Without a date range the page asks for one (the filters in force listed);
with one it streams the file (``StreamingHttpResponse``, the rows read in chunks), so a year of orders
never sits in memory. Who may see the list may export it (the model's view permission): the export shows
nothing the list does not (account numbers stay masked).

Cells are written for spreadsheets: amounts as plain decimals with the currency's exponent (no
separators, so they stay numbers), times in ISO 8601 to the second with their offset, and text that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)
prefixed with ``'`` (CSV injection, OWASP). Numbers we write ourselves (a negative delta) stay numbers.
"""

from __future__ import annotations

import copy
import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBadRequest, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
RANGE_PARAMS = ("start", "end")
CHUNK_ROWS = 2000


def csv_cell(value: object) -> str:
    """One cell: plain decimals and ISO times as written by us, text made safe for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose ``write`` hands back the line (Django's streaming CSV recipe)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow([csv_cell(name) for name in header])
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """From ``start`` 00:00 to the midnight after ``end`` (both days included), in the node's time zone."""
    zone = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(start, time.min), zone),
        timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), zone),
    )


class DateRangeForm(forms.Form):
    start = forms.DateField(label="From", help_text="First day, included (YYYY-MM-DD).")
    end = forms.DateField(label="To", help_text="Last day, included (YYYY-MM-DD).")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The first day comes after the last day.")
        return data

    @classmethod
    def initial_range(cls) -> dict[str, date]:
        today = timezone.localdate()
        return {"start": today - timedelta(days=6), "end": today}


@dataclass(frozen=True)
class Column:
    """One column of an export: its header and how to read it from a row."""

    header: str
    read: Callable[[Any], object]


class CsvExportMixin(admin.ModelAdmin):
    """An ``export/`` URL and page for a model admin: its list's rows in a date range, as CSV."""

    #: The columns of the file, in order.
    export_columns: Sequence[Column] = ()
    #: The date field the range applies to.
    export_date_field = "created_at"
    #: Relations the columns read (one query per chunk, not per row).
    export_select_related: Sequence[str] = ()

    def get_urls(self) -> list[Any]:
        opts = self.model._meta
        own: list[URLPattern] = [
            path(
                "export/",
                self.admin_site.admin_view(self.csv_export_view),
                name=f"{opts.app_label}_{opts.model_name}_export",
            )
        ]
        return own + super().get_urls()

    def export_rows(self, queryset: QuerySet[Any]) -> Iterator[list[object]]:
        for row in queryset.iterator(chunk_size=CHUNK_ROWS):
            yield [column.read(row) for column in self.export_columns]

    def csv_export_view(self, request: HttpRequest) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        list_params = request.GET.copy()
        for name in RANGE_PARAMS:
            list_params.pop(name, None)
        list_request = copy.copy(request)
        list_request.GET = QueryDict(list_params.urlencode())
        try:
            changelist = self.get_changelist_instance(list_request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(
                "The list's filters are not valid: go back to the list and export again."
            )
        form = DateRangeForm(request.GET if any(name in request.GET for name in RANGE_PARAMS) else None)
        if form.is_bound and form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            low, high = day_bounds(start, end)
            queryset = (
                changelist.get_queryset(list_request)
                .filter(**{f"{self.export_date_field}__gte": low, f"{self.export_date_field}__lt": high})
                .select_related(*self.export_select_related)
            )
            opts = self.model._meta
            filename = f"{opts.verbose_name_plural}-{start:%Y%m%d}-{end:%Y%m%d}.csv".replace(" ", "-")
            return csv_response(
                filename, [column.header for column in self.export_columns], self.export_rows(queryset)
            )
        if not form.is_bound:
            form = DateRangeForm(initial=DateRangeForm.initial_range())
        filters = [
            f"{key} = {value}" for key, value in list_params.items() if key not in {"o", "p"} and value
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Export {self.model._meta.verbose_name_plural} as CSV",
            "opts": self.model._meta,
            "form": form,
            "filters": filters,
            "list_params": [(key, value) for key, values in list_params.lists() for value in values],
            "list_url": f"../?{list_params.urlencode()}" if list_params else "../",
            "matching": changelist.result_count,
            "date_field": self.model._meta.get_field(self.export_date_field).verbose_name,
        }
        return TemplateResponse(request, "admin/csv_export.html", context)
