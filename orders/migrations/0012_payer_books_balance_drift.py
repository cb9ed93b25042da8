"""The payer role may book a balance drift (issue 19): a sync no longer changes the ledger, a staff user
books the difference from the PSPs' readings with a reason. Added to the role made by 0009, not set, so
other grants made since stay."""

from django.db import migrations

GRANT = ("balances", "balance", "book_drift")
NAME = "Can book the drift between the PSPs' balances and the ledger, with a reason"


def _permission(apps):
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    content_type, _ = content_type_model.objects.get_or_create(app_label=GRANT[0], model=GRANT[1])
    found, _ = permission_model.objects.get_or_create(
        content_type=content_type, codename=GRANT[2], defaults={"name": NAME}
    )
    return found


def grant(apps, schema_editor):
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name="payer")
    group.permissions.add(_permission(apps))


def revoke(apps, schema_editor):
    group = apps.get_model("auth", "Group").objects.filter(name="payer").first()
    if group is not None:
        group.permissions.remove(_permission(apps))


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0011_routes_visible"),
        ("balances", "0003_psp_balance_drift_book_permission"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
