"""Every role sees the PSP routes (which adapter pays which corridor); only a superuser changes them."""

from django.db import migrations

ROLES = ("viewer", "operator", "payer")


def grant(apps, schema_editor):
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    content_type, _ = content_type_model.objects.get_or_create(app_label="psp", model="psproute")
    view, _ = permission_model.objects.get_or_create(
        content_type=content_type, codename="view_psproute", defaults={"name": "Can view psp route"}
    )
    for group in group_model.objects.filter(name__in=ROLES):
        group.permissions.add(view)


def revoke(apps, schema_editor):
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    for group in group_model.objects.filter(name__in=ROLES):
        group.permissions.remove(*permission_model.objects.filter(codename="view_psproute"))


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0010_merge_0008_reversed_0009_staff_roles_actions"),
        ("psp", "0009_merge_0007_webhook_retention_0008_reversed"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
