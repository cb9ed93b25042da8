from django.urls import path

from psp import webhooks

urlpatterns = [
    path(
        "webhooks/daraja/<str:token>/<str:kind>/<str:key>",
        webhooks.MpesaCallbackApi.as_view(),
        name="mpesa-callback",
    ),
    path("webhooks/<str:psp>", webhooks.PspWebhookApi.as_view(), name="psp-webhook"),
    path("webhooks/<str:psp>/<str:reference>", webhooks.PspWebhookApi.as_view(), name="psp-callback"),
]
