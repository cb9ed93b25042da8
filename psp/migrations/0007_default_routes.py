"""The default routes: which adapter pays which corridor, most specific first. Ops edit them in admin.

A PSP governed by no route for a currency (the sandbox, by default) is tried after the routed ones, in
the order of the PSP setting: a node with only the sandbox pays every currency with it.
"""

from django.db import migrations

DEFAULT_ROUTES = [
    # currency, institution pattern, psp, priority, note
    ("NGN", "*", "lenco", 10, "Nigerian banks and wallets (Lenco v1, NIP codes)"),
    ("NGN", "*", "paystack", 20, "Nigerian banks (Paystack transfers)"),
    ("KES", "SAFAKEPC", "mpesa", 10, "M-Pesa wallets (Daraja B2C)"),
    ("KES", "AIRTKEPC", "airtel", 10, "Airtel Money Kenya"),
    ("KES", "*", "paystack", 50, "Kenyan banks (Paystack transfers)"),
    ("UGX", "MOMOUGPC", "mtn_momo", 10, "MTN Mobile Money Uganda"),
    ("UGX", "AIRTUGPC", "airtel", 10, "Airtel Money Uganda"),
    ("TZS", "AIRTTZPC", "airtel", 10, "Airtel Money Tanzania"),
    ("GHS", "MOMOGHPC", "mtn_momo", 10, "MTN Mobile Money Ghana"),
    ("GHS", "*", "paystack", 50, "Ghanaian banks and mobile money (Paystack transfers)"),
    ("XOF", "MOMO*PC", "mtn_momo", 10, "MTN Mobile Money (Benin, Côte d'Ivoire)"),
    ("MWK", "*", "lenco", 10, "Malawian banks and mobile money (Lenco v2)"),
    ("ZMW", "*", "lenco", 10, "Zambian banks and mobile money (Lenco v2)"),
]


def add_routes(apps, schema_editor):
    route = apps.get_model("psp", "PspRoute")
    for currency, institution, psp, priority, note in DEFAULT_ROUTES:
        route.objects.get_or_create(
            currency=currency, institution=institution, psp=psp, defaults={"priority": priority, "note": note}
        )


def remove_routes(apps, schema_editor):
    route = apps.get_model("psp", "PspRoute")
    for currency, institution, psp, _priority, _note in DEFAULT_ROUTES:
        route.objects.filter(currency=currency, institution=institution, psp=psp).delete()


class Migration(migrations.Migration):
    dependencies = [("psp", "0006_psp_route")]

    operations = [migrations.RunPython(add_routes, remove_routes)]
