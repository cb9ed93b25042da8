"""deploy/kubernetes builds (base, production overlay) and every object is valid Kubernetes.

The kustomize layout is built by ``provision.tests.kustomize`` (the part of kustomize the manifests use,
no binary) and each object is checked by ``kubernetes-validate`` against the schemas it bundles (strict:
an unknown field is an error), for the oldest and the newest Kubernetes version named below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from provision.tests.kustomize import build, strategic_merge

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
# The oldest Kubernetes release the manifests promise to work on, and the newest schemas bundled.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# docs/operations.md, "Memory budget": one of each process, and the migration Job, on a 512 MB box.
BOX_MEMORY_BYTES = 512 * 1000 * 1000

UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def _by_kind_and_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_built_object_is_valid_kubernetes(directory: Path, version: str) -> None:
    objects = build(directory)

    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    assert len(objects) == len(_by_kind_and_name(objects))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_secret_template_is_valid_and_never_applied(version: str) -> None:
    template = yaml.safe_load((BASE / "secret.template.yaml").read_text())

    kubernetes_validate.validate(template, version, strict=True)
    assert all("REPLACE_ME" in value for value in template["stringData"].values())
    for directory in (BASE, PRODUCTION):
        assert "Secret" not in {obj["kind"] for obj in build(directory)}


def test_production_runs_web_a_deployment_per_lane_a_migration_job_and_the_ingress() -> None:
    objects = _by_kind_and_name(build(PRODUCTION))

    assert set(objects) == {
        ("ConfigMap", "provision-config"),
        ("Job", "provision-migrate"),
        ("Deployment", "provision-web"),
        ("Service", "provision-web"),
        ("PodDisruptionBudget", "provision-web"),
        ("Deployment", "provision-worker"),
        ("Deployment", "provision-payouts"),
        ("Ingress", "provision-web"),
    }
    assert {obj["metadata"]["namespace"] for obj in objects.values()} == {"provision-node"}
    for name in ("provision-web", "provision-worker", "provision-payouts"):
        deployment = objects["Deployment", name]
        assert deployment["spec"]["replicas"] == 2
        assert _container(deployment)["image"] == "registry.example.com/provision-node:0.1.0"
        assert _container(deployment)["envFrom"] == [
            {"configMapRef": {"name": "provision-config"}},
            {"secretRef": {"name": "provision-secrets"}},
        ]
    assert objects["ConfigMap", "provision-config"]["data"]["PSP"] == "lenco"
    assert objects["ConfigMap", "provision-config"]["data"]["HTTPS_ONLY"] == "true"
    assert objects["Ingress", "provision-web"]["spec"]["rules"][0]["host"] == "provision-node.example.com"


def test_the_base_has_no_ingress_and_one_replica_of_each_process() -> None:
    objects = _by_kind_and_name(build(BASE))

    assert ("Ingress", "provision-web") not in objects
    assert [obj["spec"]["replicas"] for obj in objects.values() if obj["kind"] == "Deployment"] == [1, 1, 1]
    assert objects["ConfigMap", "provision-config"]["data"]["PSP"] == "sandbox"


def test_processes_run_the_docker_compose_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    objects = _by_kind_and_name(build(BASE))

    assert _container(objects["Deployment", "provision-web"])["command"] == compose["web"]["command"]
    # compose's worker runs both lanes (manage.py worker); Kubernetes runs them apart, each scaled on its own
    both_lanes = compose["worker"]["command"]
    assert both_lanes[-1].endswith("&& exec python manage.py worker")
    assert _container(objects["Deployment", "provision-worker"])["command"] == [
        *both_lanes[:-1],
        both_lanes[-1].replace("manage.py worker", "manage.py qcluster"),
    ]
    assert _container(objects["Deployment", "provision-payouts"])["command"] == [
        "sh",
        "-c",
        "python manage.py migrate_locked --no-input && exec python manage.py payout_lane",
    ]
    assert _container(objects["Job", "provision-migrate"])["command"] == [
        "python",
        "manage.py",
        "migrate_locked",
        "--no-input",
    ]


def test_web_is_live_on_health_live_and_ready_on_the_database_and_migrations() -> None:
    web = _container(_by_kind_and_name(build(BASE))["Deployment", "provision-web"])

    assert web["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert web["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {
        "path": "/health/ready?checks=database,migrations",
        "port": "http",
    }
    assert web["ports"] == [{"name": "http", "containerPort": 8000}]


def test_the_service_and_the_disruption_budget_select_the_web_pods_only() -> None:
    objects = _by_kind_and_name(build(BASE))
    labels = {
        name: obj["spec"]["template"]["metadata"]["labels"]
        for (kind, name), obj in objects.items()
        if kind == "Deployment"
    }

    service_selector = objects["Service", "provision-web"]["spec"]["selector"]
    budget_selector = objects["PodDisruptionBudget", "provision-web"]["spec"]["selector"]["matchLabels"]
    for selector in (service_selector, budget_selector):
        assert [name for name, pod in labels.items() if selector.items() <= pod.items()] == ["provision-web"]


def test_one_of_each_process_and_the_migration_job_fit_the_memory_budget() -> None:
    objects = build(BASE)
    containers = [_container(obj) for obj in objects if obj["kind"] in {"Deployment", "Job"}]

    requested = sum(_bytes(container["resources"]["requests"]["memory"]) for container in containers)

    assert len(containers) == 4
    assert requested <= BOX_MEMORY_BYTES
    for container in containers:
        resources = container["resources"]
        assert _bytes(resources["requests"]["memory"]) <= _bytes(resources["limits"]["memory"])
        assert "cpu" not in resources["limits"]


def test_the_memory_budget_in_the_docs_is_the_bases() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text()
    objects = _by_kind_and_name(build(BASE))
    rows = {
        "web": objects["Deployment", "provision-web"],
        "worker": objects["Deployment", "provision-worker"],
        "payouts": objects["Deployment", "provision-payouts"],
        "migrate (the Job, until it ends)": objects["Job", "provision-migrate"],
    }

    for row, obj in rows.items():
        memory = _container(obj)["resources"]
        request, limit = (memory[kind]["memory"].replace("Mi", " Mi") for kind in ("requests", "limits"))
        assert f"| {row} | {request} | {limit} |" in docs


def test_production_reserves_each_containers_memory_limit() -> None:
    deployments = [obj for obj in build(PRODUCTION) if obj["kind"] == "Deployment"]

    for deployment in deployments:
        resources = _container(deployment)["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"]
    assert len(deployments) == 3


def test_strategic_merge_merges_named_list_items_and_replaces_other_lists() -> None:
    base: dict[str, Any] = {
        "containers": [{"name": "web", "image": "a", "args": ["x"]}, {"name": "side", "image": "b"}]
    }
    patch = {"containers": [{"name": "web", "args": ["y"]}]}

    merged = strategic_merge(base, patch)

    assert merged == {
        "containers": [{"name": "web", "image": "a", "args": ["y"]}, {"name": "side", "image": "b"}]
    }
    assert base["containers"][0]["args"] == ["x"]
