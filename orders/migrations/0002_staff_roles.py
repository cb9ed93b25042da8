"""Staff roles as Django groups: viewer, operator (approve/decline/cancel), payer (pay/mark paid/resolve)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    ("orders", "view_order"),
    ("orders", "view_outboxmessage"),
    ("balances", "view_balance"),
    ("balances", "view_ledgerentry"),
    ("balances", "view_pspbalance"),
    ("balances", "view_balancealert"),
    ("psp", "view_transfer"),
    ("psp", "view_webhookevent"),
    ("psp", "view_institutionmapping"),
]
ROLES = {
    "viewer": VIEW,
    "operator": [*VIEW, ("orders", "approve_order")],
    "payer": [*VIEW, ("orders", "pay_order")],
}


def create_roles(apps, schema_editor):
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        for app_label, codename in perms:
            group.permissions.add(
                permission_model.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("balances", "0001_initial"),
        ("psp", "0002_seed_institution_mapping"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
