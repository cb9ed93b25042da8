"""Import, before a server forks its processes, what each process would otherwise import on its own.

gunicorn (``preload_app``) and ``manage.py qcluster`` load Django once and fork; the forked processes
share the loaded code's memory pages as long as nothing writes to them (``gc.freeze`` keeps the
collector from doing so). Whatever a process imports after the fork is its own copy: without this, each
gunicorn worker imports the URLconf, every view, DRF's and drf-spectacular's modules on its first request
(64 modules), and each django-q2 process the task modules and PSP clients on its first task.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def warm_web() -> None:
    """The URLconf, every view it names, and the resolver's lookup tables."""
    from django.urls import get_resolver

    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 - imports the URLconf and every view module it names
    resolver._populate()  # the reverse lookup tables, built once here instead of once per worker


def warm_worker() -> None:
    """Every app's ``tasks`` module, the broker, and the configured PSP adapters with their clients."""
    from django.utils.module_loading import autodiscover_modules
    from django_q.brokers import get_broker

    from orders import pipeline  # noqa: F401 - imported by the order task on its first run
    from psp import registry

    autodiscover_modules("tasks")
    get_broker()
    try:
        registry.enabled()
    except Exception:  # a misconfigured PSP is reported where it is used, not at start-up
        logger.warning("warm.psp_adapters_failed", exc_info=True)
