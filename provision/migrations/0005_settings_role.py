"""The ``settings`` staff role (issue 19): changes the runtime settings and the PSP routes; and every role sees
heartbeats, notifications, the runtime settings and the worker's task results (the health strip links to
them: the failed tasks and the worker's last finished task).

settings  views and changes the runtime settings row (mode, manual policy, approval timeout, limits, review,
          maker-checker and critical-balance thresholds) and adds, changes and deletes PSP routes; sees the
          node switch, heartbeats and notifications. Nothing about orders or money: combine with another
          role when one person does both.

The permissions are created here when missing: Django creates them only after the whole migrate run.
"""

from django.db import migrations

SEEN_BY_EVERY_ROLE = [
    ("django_q", "success", "view"),
    ("django_q", "failure", "view"),
    ("provision", "heartbeat", "view"),
    ("provision", "notification", "view"),
    ("provision", "nodesettings", "view"),
]
SETTINGS_ROLE = [
    *SEEN_BY_EVERY_ROLE,
    ("provision", "nodecontrol", "view"),
    ("provision", "nodesettings", "change"),
    ("psp", "psproute", "view"),
    ("psp", "psproute", "add"),
    ("psp", "psproute", "change"),
    ("psp", "psproute", "delete"),
]


def permission(apps, app_label, model_name, action):
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model_name)
    verbose_name = apps.get_model(app_label, model_name)._meta.verbose_name_raw
    found, _ = permission_model.objects.get_or_create(
        content_type=content_type,
        codename=f"{action}_{model_name}",
        defaults={"name": f"Can {action} {verbose_name}"},
    )
    return found


def add_roles(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    group, _ = group_model.objects.get_or_create(name="settings")
    group.permissions.set([permission(apps, *grant) for grant in SETTINGS_ROLE])
    for role in ("viewer", "operator", "payer"):
        existing, _ = group_model.objects.get_or_create(name=role)
        existing.permissions.add(*[permission(apps, *grant) for grant in SEEN_BY_EVERY_ROLE])


def remove_roles(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    group_model.objects.filter(name="settings").delete()
    for role in ("viewer", "operator", "payer"):
        for existing in group_model.objects.filter(name=role):
            existing.permissions.remove(*[permission(apps, *grant) for grant in SEEN_BY_EVERY_ROLE])


class Migration(migrations.Migration):
    dependencies = [
        ("provision", "0004_node_settings_notifications"),
        ("orders", "0011_routes_visible"),
        ("psp", "0010_psp_recipient"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_roles, remove_roles)]
