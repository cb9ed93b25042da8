"""Import, before gunicorn forks its workers, what each worker would otherwise import on its own.

gunicorn (``preload_app``) loads Django once and forks; the workers share the loaded code's memory pages
as long as nothing writes to them (``gc.freeze`` keeps the collector from doing so). Whatever a worker
imports after the fork is its own copy: without this, each imports the URLconf and every view (DRF's and
drf-spectacular's modules with them) on its first request.
"""

from __future__ import annotations

from django.urls import get_resolver


def warm_web() -> None:
    """The URLconf and every view module it names."""
    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view module it names
