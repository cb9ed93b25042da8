from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_fsm.signals import post_transition

        from orders.models import Order
        from orders.signals import count_transition, notify_transition

        post_transition.connect(count_transition, sender=Order, dispatch_uid="orders.count_transition")
        post_transition.connect(notify_transition, sender=Order, dispatch_uid="orders.notify_transition")
