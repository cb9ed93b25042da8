"""Every configuration variable is documented in both .env.example and docs/configuration.md, and the
deployment examples only use metric names the node exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
# "NAME=value" or, for variables that must stay unset by default, "# NAME=value".
ENV_LINE = re.compile(r"^(?:# ?)?([A-Z][A-Z0-9_]+)=", re.MULTILINE)
DOC_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \|", re.MULTILINE)
SETTING_READ = re.compile(r"""setting\(\s*["']([A-Z][A-Z0-9_]+)["']""")
METRIC_NAME = re.compile(r"\b((?:provision|django)_[a-z0-9_]+)")
# Read by prometheus_client from the environment, not through provision.env.
READ_OUTSIDE_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR"}


def env_example_variables() -> set[str]:
    return set(ENV_LINE.findall((ROOT / ".env.example").read_text()))


def documented_variables() -> set[str]:
    return set(DOC_ROW.findall((ROOT / "docs" / "configuration.md").read_text()))


def test_env_example_and_configuration_reference_list_the_same_variables() -> None:
    in_example, in_docs = env_example_variables(), documented_variables()

    assert sorted(in_example - in_docs) == [], "in .env.example but not in docs/configuration.md"
    assert sorted(in_docs - in_example) == [], "in docs/configuration.md but not in .env.example"


def test_every_variable_the_settings_read_is_in_env_example() -> None:
    read = set(SETTING_READ.findall((ROOT / "provision" / "settings" / "base.py").read_text()))

    assert sorted(read - env_example_variables()) == []
    assert sorted(env_example_variables() - read - READ_OUTSIDE_SETTINGS) == []


def test_each_variable_is_documented_once() -> None:
    rows = DOC_ROW.findall((ROOT / "docs" / "configuration.md").read_text())

    assert sorted(name for name in set(rows) if rows.count(name) > 1) == []


def exposed_metric_families(client: Client) -> set[str]:
    from django.conf import settings
    from django.utils import timezone
    from django_q.models import Success

    Success.objects.create(
        id="d" * 32, name="sweep", func="orders.tasks.sweep", started=timezone.now(), stopped=timezone.now()
    )
    token = settings.METRICS_TOKEN or "kP4vR8xN2mT6bW0sJ3yH7cL1dF5gQ9zA"
    with override_settings(METRICS_TOKEN=token):
        body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
    return {family.name for family in text_string_to_metric_families(body)}


def family_of(sample_name: str) -> str:
    name = re.sub(r"_(bucket|count|sum)$", "", sample_name)
    return re.sub(r"_total$", "", name)


@pytest.mark.django_db
def test_dashboard_and_alerts_use_only_metrics_the_node_exposes(client: Client) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    alerts = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])] + [
        rule["expr"] for group in alerts["groups"] for rule in group["rules"]
    ]

    used = {family_of(name) for expr in expressions for name in METRIC_NAME.findall(expr)}

    assert len(dashboard["panels"]) >= 20
    assert sorted(used - exposed_metric_families(client)) == []
    assert {
        "provision_orders",
        "provision_outbox_oldest_pending_age_seconds",
        "provision_balance",
        "provision_transfers",
        "provision_webhook_signature_failures",
        "provision_worker_last_task_age_seconds",
    } <= used
