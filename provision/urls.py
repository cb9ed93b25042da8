from django.contrib import admin
from django.urls import include, path

from provision import views

handler400 = "provision.exception_handler.json_400"
handler403 = "provision.exception_handler.json_403"
handler404 = "provision.exception_handler.json_404"
handler500 = "provision.exception_handler.json_500"

admin.site.site_header = "Provision node"
admin.site.site_title = "Provision node"
admin.site.index_title = "Operations"

urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("info", views.InfoApi.as_view(), name="info"),
    path("", include("orders.urls")),
    path("", include("psp.urls")),
    path("admin/", admin.site.urls),
]
