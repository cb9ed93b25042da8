"""The container files run exactly the two production processes, and compose config is valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_postgres_web_and_the_worker_with_both_lanes_with_the_production_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    assert set(compose["services"]) == {"db", "web", "worker"}
    assert " ".join(compose["services"]["worker"]["command"]).endswith("exec python manage.py worker")
    assert "pgdata" in compose["volumes"]
    assert compose["services"]["db"]["image"].startswith("postgres")


def test_dockerfile_runs_gunicorn_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "gunicorn provision.wsgi:application" in dockerfile
    assert "manage.py migrate" in dockerfile
    assert "\nUSER provision\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:  # noqa: S603
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    return None


@pytest.mark.skipif(_compose_client() is None, reason="no docker compose client on this machine")
def test_docker_compose_config_is_valid(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    client = _compose_client()
    assert client is not None

    result = subprocess.run(  # noqa: S603
        [
            *client,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr


def test_the_image_never_gets_a_local_dotenv_virtualenv_or_database() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()

    assert {".env", ".env.*", "!.env.example", ".venv", "var/*", ".git"} <= set(ignored)
