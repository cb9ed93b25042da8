from django.apps import AppConfig


class BalancesConfig(AppConfig):
    name = "balances"
    default_auto_field = "django.db.models.BigAutoField"
