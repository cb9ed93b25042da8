from django.apps import AppConfig


class ProvisionConfig(AppConfig):
    name = "provision"
    verbose_name = "Provision node"
    default_auto_field = "django.db.models.BigAutoField"
