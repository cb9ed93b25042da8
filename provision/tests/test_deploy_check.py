"""`manage.py check --deploy` with the production environment docs/configuration.md writes down reports no
issues; with the placeholders of .env.example (or of that block, left unfilled) the node does not start."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_BLOCK = re.compile(r"<!-- production-env -->\s*```sh\n(.*?)```", re.DOTALL)
PLACEHOLDER = re.compile(r"<[^>]*>")


def documented_production_env() -> dict[str, str]:
    match = PRODUCTION_BLOCK.search((ROOT / "docs" / "configuration.md").read_text())
    assert match, "docs/configuration.md has no production-env block"
    env = {}
    for line in match.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def env_example() -> dict[str, str]:
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def check_deploy(variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PROVISION_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        **variables,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def filled_in(env: dict[str, str]) -> dict[str, str]:
    """What an operator does with the block: every <...> replaced by a fresh random value."""
    return {name: PLACEHOLDER.sub(lambda _: secrets.token_hex(32), value) for name, value in env.items()}


def test_the_documented_production_environment_passes_the_deploy_check() -> None:
    env = filled_in(documented_production_env())

    result = check_deploy(env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (1 silenced)."


def test_the_documented_production_environment_sets_what_security_needs() -> None:
    env = documented_production_env()

    assert env["DEBUG"] == "false"
    assert env["HTTPS_ONLY"] == "true"
    for name in ("SECRET", "AGGREGATOR_SECRET_KEY", "METRICS_TOKEN"):
        assert PLACEHOLDER.fullmatch(env[name]), name  # never a value anyone could copy
    assert "METRICS_ALLOW_UNAUTHENTICATED" not in env
    assert "sandbox" not in env["PSP"]


def test_the_documented_block_left_unfilled_does_not_start() -> None:
    result = check_deploy(documented_production_env())

    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: SECRET is a placeholder")


def test_env_example_as_shipped_does_not_start() -> None:
    env = {**env_example(), "DATABASE_URL": "sqlite:////tmp/provision-deploy-check.sqlite3"}

    result = check_deploy(env)

    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: SECRET is a placeholder")


def test_the_example_aggregator_secret_is_refused_even_with_everything_else_production_ready() -> None:
    env = {
        **filled_in(documented_production_env()),
        "AGGREGATOR_SECRET_KEY": env_example()["AGGREGATOR_SECRET_KEY"],
    }

    result = check_deploy(env)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: AGGREGATOR_SECRET_KEY is a placeholder, not a secret: expected the secret the "
        "aggregator issued (44 characters) (refused unless DEBUG=true)"
    ]


def test_the_sandbox_published_webhook_key_is_refused() -> None:
    env = {
        **filled_in(documented_production_env()),
        "PSP": "sandbox",
        "SANDBOX_WEBHOOK_SECRET": "sandbox-webhook-secret",
    }

    result = check_deploy(env)

    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: SANDBOX_WEBHOOK_SECRET is a placeholder")
