from django.apps import AppConfig


class PspConfig(AppConfig):
    name = "psp"
    verbose_name = "Payment service providers"
    default_auto_field = "django.db.models.BigAutoField"
