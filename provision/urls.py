from django.contrib import admin
from django.urls import include, path

from provision import api_docs, health, metrics_export, views

handler400 = "provision.exception_handler.json_400"
handler403 = "provision.exception_handler.json_403"
handler404 = "provision.exception_handler.json_404"
handler500 = "provision.exception_handler.json_500"

admin.site.site_header = "Provision node"
admin.site.site_title = "Provision node"
admin.site.index_title = "Operations"

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("health/live", health.HealthLiveApi.as_view(), name="health-live"),
    path("health/ready", health.HealthReadyApi.as_view(), name="health-ready"),
    path("info", views.InfoApi.as_view(), name="info"),
    path("metrics", metrics_export.MetricsApi.as_view(), name="metrics"),
    path("api/schema/", api_docs.SchemaApi.as_view(), name="api-schema"),
    path("api/docs/", api_docs.ApiDocsApi.as_view(), name="api-docs"),
    path("", include("orders.urls")),
    path("", include("psp.urls")),
    path("admin/", admin.site.urls),
]
