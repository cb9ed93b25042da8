"""ASGI entry point (the node runs under gunicorn/WSGI; this exists for ASGI servers)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provision.settings.base")
application = get_asgi_application()
