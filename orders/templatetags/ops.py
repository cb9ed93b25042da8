from __future__ import annotations

from typing import Any

from django import template

from orders import selectors_ops

register = template.Library()


@register.simple_tag
def ops_queue() -> Any:
    return selectors_ops.ops_queue()


@register.simple_tag
def ops_dashboard() -> Any:
    return selectors_ops.ops_dashboard()
