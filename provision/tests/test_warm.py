"""What gunicorn's master imports before forking is shared by its workers: the warm-up must import what
they would otherwise each import on their first request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from provision.testing import subprocess_env

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
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", PROBE, function],
        cwd=ROOT,
        env=subprocess_env(PSP="sandbox"),
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
