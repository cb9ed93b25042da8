"""Staff roles, complete (issue 17): every admin action needs a permission, each role gets the ones its job needs.

viewer    sees orders, outbox, balances, ledger, transfers, webhooks, circuits, institution mappings, the
          review list and the node switch; changes nothing.
operator  viewer + the order decisions (accept, decline, cancel, record approval), outbox replay and
          abandon, closing PSP circuits, pausing and resuming the node.
payer     viewer + paying (PSP, bank file, marked paid) and resolving payouts under review.

The groups get exactly these permissions (not "at least"), so a role reads the same on every node. The
permissions are created here when missing: Django creates them only after the whole migrate run.
"""

from django.db import migrations

VIEW = [
    ("orders", "order", "view"),
    ("orders", "outboxmessage", "view"),
    ("orders", "reviewlistentry", "view"),
    ("balances", "balance", "view"),
    ("balances", "ledgerentry", "view"),
    ("balances", "pspbalance", "view"),
    ("balances", "balancealert", "view"),
    ("psp", "transfer", "view"),
    ("psp", "webhookevent", "view"),
    ("psp", "institutionmapping", "view"),
    ("psp", "pspcircuit", "view"),
    ("provision", "nodecontrol", "view"),
]
# (app label, model, codename, name) of the permissions that are not Django's add/change/delete/view.
CUSTOM = {
    "approve_order": ("orders", "order", "Can approve, accept, decline and cancel orders"),
    "pay_order": ("orders", "order", "Can pay orders and mark them paid"),
    "replay_outboxmessage": ("orders", "outboxmessage", "Can send outbox messages again"),
    "abandon_outboxmessage": (
        "orders",
        "outboxmessage",
        "Can abandon outbox messages (the aggregator is never told)",
    ),
    "close_pspcircuit": ("psp", "pspcircuit", "Can close a PSP circuit (the PSP is back)"),
}
ROLES = {
    "viewer": [*VIEW],
    "operator": [
        *VIEW,
        ("orders", "order", "approve_order"),
        ("orders", "outboxmessage", "replay_outboxmessage"),
        ("orders", "outboxmessage", "abandon_outboxmessage"),
        ("psp", "pspcircuit", "close_pspcircuit"),
        ("provision", "nodecontrol", "add"),
        ("provision", "nodecontrol", "change"),
    ],
    "payer": [*VIEW, ("orders", "order", "pay_order")],
}


def permission(apps, app_label, model_name, action_or_codename):
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model_name)
    if action_or_codename in CUSTOM:
        codename, name = action_or_codename, CUSTOM[action_or_codename][2]
    else:
        verbose_name = apps.get_model(app_label, model_name)._meta.verbose_name_raw
        codename = f"{action_or_codename}_{model_name}"
        name = f"Can {action_or_codename} {verbose_name}"
    found, _ = permission_model.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": name}
    )
    return found


def set_roles(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    for role, grants in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set([permission(apps, *grant) for grant in grants])


def previous_roles(apps, schema_editor):
    """Back to 0002's roles (the permissions stay: Django keeps those of existing models anyway)."""
    view = [grant for grant in VIEW if grant[1] not in {"reviewlistentry", "pspcircuit", "nodecontrol"}]
    previous = {
        "viewer": view,
        "operator": [*view, ("orders", "order", "approve_order")],
        "payer": [*view, ("orders", "order", "pay_order")],
    }
    group_model = apps.get_model("auth", "Group")
    for role, grants in previous.items():
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set([permission(apps, *grant) for grant in grants])


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0008_outbox_permissions"),
        ("psp", "0006_circuit_permissions"),
        ("provision", "0003_heartbeat"),
        ("balances", "0002_psp_balance_ledger_seq_at_read"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(set_roles, previous_roles)]
