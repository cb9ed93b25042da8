from django.apps import AppConfig

from provision.warm import freeze_inherited_objects


class ProvisionConfig(AppConfig):
    name = "provision"
    verbose_name = "Provision node"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # django-q2's cluster and gunicorn fork their processes after this: they share its memory pages.
        freeze_inherited_objects()
