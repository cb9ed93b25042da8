"""The health strip on every admin page and the non-order items of the index's "Waiting for you"."""

from __future__ import annotations

from typing import Any

from django import template

from provision import health_strip as strip

register = template.Library()


@register.inclusion_tag("admin/provision/health_strip.html", takes_context=True)
def health_strip(context: template.Context) -> dict[str, Any]:
    """Nothing before login or the second factor (admin's ``has_permission`` is false there)."""
    request = context.get("request")
    if request is None or not context.get("has_permission"):
        return {"items": []}
    control_perm = request.user.has_perm("provision.change_nodecontrol")
    items = strip.strip_items()
    return {
        "items": items,
        "paused": items[0].level != strip.OK,
        "can_pause": control_perm,
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("admin/provision/attention.html")
def attention() -> dict[str, Any]:
    refused, refused_count = strip.refused_outbox()
    needing = [item for item in strip.strip_items() if item.needs_person and item.key != "outbox"]
    return {"items": needing, "refused": refused, "refused_count": refused_count}
