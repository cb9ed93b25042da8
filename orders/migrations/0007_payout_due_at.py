# Received orders are queued as django-q2 tasks when they arrive (no dispatcher: queued_at goes), and the
# payout lane starts the payouts of accepted orders from payout_due_at on.

from django.db import migrations, models
from django.db.models.functions import Now


def accepted_orders_are_due(apps, schema_editor):
    """Accepted orders waiting for their payout when the node is upgraded: the payout lane takes them."""
    Order = apps.get_model("orders", "Order")
    Order.objects.filter(status="accepted").update(payout_due_at=Now())


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0006_accept_claim"),
    ]

    operations = [
        migrations.RemoveField(model_name="order", name="queued_at"),
        migrations.AddField(
            model_name="order",
            name="payout_due_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="The payout lane starts the payout from then on.",
                null=True,
            ),
        ),
        migrations.RunPython(accepted_orders_are_due, migrations.RunPython.noop),
    ]
