"""Shared admin building blocks."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that only services write: visible to staff, never added, changed or deleted in admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedChangesAdmin(admin.ModelAdmin):
    """Each change is logged in History with every changed field's old and new value (not just its name),
    from the change form and from the list's editable columns alike."""

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        if add or not form.changed_data:
            return super().construct_change_message(request, form, formsets, add)
        changes = [
            f"{name}: {form.initial.get(name)!r} -> {form.cleaned_data.get(name)!r}"
            for name in form.changed_data
        ]
        return "Changed " + "; ".join(changes)
