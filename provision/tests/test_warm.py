"""What a process imports before forking is shared by its children: the warm-up must import what they
would otherwise each import on their first request or task."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, django
django.setup()
from provision import warm
before = set(sys.modules)
getattr(warm, sys.argv[1])()
print(" ".join(sorted(set(sys.modules) - before)))
"""


def imported_by(function: str) -> set[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PROVISION_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        "SECRET": "s" * 50,
        "AGGREGATOR_CLIENT_ID": "8b2f5a0e-3c1d-4e6f-9a7b-0c1d2e3f4a5b",
        "AGGREGATOR_SECRET_KEY": "secret",
        "DATABASE_URL": "sqlite:////tmp/provision-warm-test.sqlite3",
        "PSP": "sandbox",
    }
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", PROBE, function],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


def test_the_web_warm_up_imports_the_urlconf_and_the_views_it_names() -> None:
    assert {"provision.urls", "orders.api", "psp.webhooks", "drf_spectacular.views"} <= imported_by(
        "warm_web"
    )


def test_the_worker_warm_up_imports_the_task_modules_broker_and_psp_adapter() -> None:
    assert {"orders.tasks", "orders.pipeline", "orders.broker", "psp.tasks", "psp.sandbox"} <= imported_by(
        "warm_worker"
    )
