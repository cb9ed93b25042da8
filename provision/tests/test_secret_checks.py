"""Outside DEBUG the node refuses to start with a secret that is a known placeholder, too short, or made of
a handful of characters: one configuration line naming the variable, never echoing the value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provision.testing import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
LENCO_KEY = "7c1f0e9a3b5d48e2a6c4f1b09d8e7a65"


def check(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(DATABASE_URL="sqlite:////tmp/provision-secret-checks.sqlite3", **overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_test_environment_with_real_looking_secrets_boots() -> None:
    result = check()

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "variable", "problem"),
    [
        ({"SECRET": "change-me-to-a-long-random-string"}, "SECRET", "is a placeholder"),
        ({"SECRET": "x" * 64}, "SECRET", "too few different characters"),
        ({"SECRET": "Zt6q-Vh3oP9wLx2Rk8bNc5Ym1Ja4Fs7D"}, "SECRET", "is too short"),
        (
            {"SECRET": "dev-only-secret-key-never-use-in-production-0123456789abcdefghijklmnop"},
            "SECRET",
            "placeholder",
        ),
        ({"AGGREGATOR_SECRET_KEY": "change-me"}, "AGGREGATOR_SECRET_KEY", "is a placeholder"),
        ({"AGGREGATOR_SECRET_KEY": "secret"}, "AGGREGATOR_SECRET_KEY", "is a placeholder"),
        ({"AGGREGATOR_SECRET_KEY": "k3J9vQ2xL7pR4mZ8"}, "AGGREGATOR_SECRET_KEY", "is too short"),
        (
            {"AGGREGATOR_SECRET_KEY": "dev-aggregator-secret-only-for-debug-and-sandbox="},
            "AGGREGATOR_SECRET_KEY",
            "is a placeholder",
        ),
        ({"AGGREGATOR_PREVIOUS_SECRET_KEY": "old"}, "AGGREGATOR_PREVIOUS_SECRET_KEY", "is too short"),
        ({"SANDBOX_WEBHOOK_SECRET": "sandbox-webhook-secret"}, "SANDBOX_WEBHOOK_SECRET", "is a placeholder"),
        ({"SANDBOX_WEBHOOK_SECRET": ""}, "SANDBOX_WEBHOOK_SECRET", "is a placeholder"),  # the default
        ({"METRICS_TOKEN": "metrics-token-0123456789"}, "METRICS_TOKEN", "is too short"),
        ({"PSP": "lenco", "LENCO_API_KEY": "change-me"}, "LENCO_API_KEY", "is a placeholder"),
        ({"PSP": "lenco", "LENCO_API_KEY": "abc123"}, "LENCO_API_KEY", "is too short"),
    ],
)
def test_a_weak_secret_stops_the_boot_without_debug(
    overrides: dict[str, str], variable: str, problem: str
) -> None:
    result = check(**overrides)

    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {variable} ")
    assert problem in lines[0]
    value = overrides[variable]
    assert len(value) < 8 or value not in lines[0]  # the line never shows the secret itself


def test_a_sandbox_secret_is_not_required_when_the_sandbox_is_off() -> None:
    result = check(PSP="lenco", LENCO_API_KEY=LENCO_KEY, SANDBOX_WEBHOOK_SECRET="sandbox-webhook-secret")

    assert result.returncode == 0, result.stderr


def test_debug_keeps_working_with_the_development_placeholders() -> None:
    env = subprocess_env(DATABASE_URL="sqlite:////tmp/provision-secret-checks.sqlite3", DEBUG="true")
    for name in ("SECRET", "AGGREGATOR_CLIENT_ID", "AGGREGATOR_SECRET_KEY", "SANDBOX_WEBHOOK_SECRET"):
        env.pop(name)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
