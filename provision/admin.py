from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from provision.models import NodeControl


@admin.register(NodeControl)
class NodeControlAdmin(admin.ModelAdmin):
    list_display = ("__str__", "paused", "paused_reason", "updated_at")
    fields = ("paused", "paused_reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not NodeControl.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
