"""The node's URLs plus, when ``settings.BENCH_FLOOR`` is true, the bench-only floor view."""

from typing import cast

from django.conf import settings
from django.urls import URLPattern, URLResolver, path

from bench import views
from provision.urls import handler400, handler403, handler404, handler500
from provision.urls import urlpatterns as node_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

urlpatterns = cast(list[URLPattern | URLResolver], list(node_urlpatterns))
if getattr(settings, "BENCH_FLOOR", False):
    urlpatterns.append(path("_bench/floor", views.FloorApi.as_view(), name="bench-floor"))
