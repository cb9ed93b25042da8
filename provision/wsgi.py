"""WSGI entry point: ``gunicorn provision.wsgi:application``."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provision.settings.base")

try:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    print(f"configuration error: {exc}", file=sys.stderr)  # noqa: T201
    raise SystemExit(2) from None
