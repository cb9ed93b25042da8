# Offers are decided and accepted by the lane from accept_due_at on (not by a django-q2 task per offer).

from django.db import migrations, models
from django.db.models.functions import Now


def open_offers_are_due(apps, schema_editor):
    """Offers being decided or accepted when the node is upgraded: the lane takes them (a staff-policy
    offer is looked at once and left for staff again)."""
    Order = apps.get_model("orders", "Order")
    Order.objects.filter(status__in=["received", "accepting"]).update(accept_due_at=Now())


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0012_payer_books_balance_drift"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="accept_due_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="The lane decides or accepts the offer (or settles a lost accept) from then on.",
                null=True,
            ),
        ),
        migrations.RunPython(open_offers_are_due, migrations.RunPython.noop),
    ]
