"""Let the simulator's tests run with the Django plugin off (``pytest -p no:django devtools/tests``).

The project's root conftest reads ``connection.vendor`` while collecting; without pytest-django nobody
configured settings, so give Django a minimal in-memory configuration for that lookup. Nothing here runs
when the plugin is on or DJANGO_SETTINGS_MODULE is set (the real settings are used then).
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("django") or os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        )
