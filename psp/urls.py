from django.urls import path

from psp import webhooks

urlpatterns = [
    path("webhooks/<str:psp>", webhooks.PspWebhookApi.as_view(), name="psp-webhook"),
    path("webhooks/<str:psp>/<str:reference>", webhooks.PspWebhookApi.as_view(), name="psp-callback"),
]
