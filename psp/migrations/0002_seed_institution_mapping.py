"""Seed the institution mapping from the aggregator's institution list (psp/data/institutions.json).

Lenco (v1, NGN) pays by NIP bank code; the list's nipCode values come from public lists and must be
checked against Lenco's own bank list (ops can correct them in admin). The sandbox accepts every code.
"""

import json
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data" / "institutions.json"


def seed(apps, schema_editor):
    mapping = apps.get_model("psp", "InstitutionMapping")
    currencies = json.loads(DATA.read_text(encoding="utf-8"))["currencies"]
    rows = []
    for currency, institutions in currencies.items():
        for item in institutions:
            rows.append(
                mapping(
                    psp="sandbox",
                    currency=currency,
                    institution=item["code"],
                    institution_name=item["name"],
                    psp_code=item["code"],
                )
            )
            if currency == "NGN" and item.get("nipCode"):
                rows.append(
                    mapping(
                        psp="lenco",
                        currency=currency,
                        institution=item["code"],
                        institution_name=item["name"],
                        psp_code=item["nipCode"],
                    )
                )
    mapping.objects.bulk_create(rows, ignore_conflicts=True)


def unseed(apps, schema_editor):
    apps.get_model("psp", "InstitutionMapping").objects.filter(psp__in=["sandbox", "lenco"]).delete()


class Migration(migrations.Migration):
    dependencies = [("psp", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
