"""`make run` (scripts/run.sh and scripts/run_preflight.py): a demo .env when there is none, loopback by
default, a start line that says what runs, and a busy port stops start-up before anything is migrated.

The run.sh tests run a copy of the two scripts in a temporary directory whose ``.venv/bin`` holds
stand-ins: ``python`` runs ``scripts/*`` with the real interpreter and only records ``manage.py``
commands; ``gunicorn`` records its arguments. So the .env is written into the temporary directory, and
no database, server or worker is touched. ``PROVISION_READ_DOTENV=0`` keeps a developer's own .env out
of the settings the preflight loads.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_preflight() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_preflight", ROOT / "scripts" / "run_preflight.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preflight = _load_preflight()


def _dotenv_values(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _settings(**overrides: object) -> SimpleNamespace:
    values: dict[str, object] = {
        "PSP": ["sandbox"],
        "PROVISION_MODE": "auto",
        "MANUAL_POLICY": "hold",
        "CURRENCIES": ["NGN"],
        "DEBUG": True,
        "MTN_MOMO_TARGET_ENVIRONMENT": "sandbox",
        "LENCO_BASE_URL": "https://api.lenco.co/access/v1",
    }
    return SimpleNamespace(**{**values, **overrides})


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def node_copy(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    for name in ("run.sh", "run_preflight.py"):
        shutil.copy2(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    # The two long-running processes stay up (sleep) until run.sh stops them.
    stand_ins = {
        "python": f'case "$1" in scripts/*) exec {sys.executable} "$@" ;; esac\n'
        'echo "python $*" >>calls.log\n'
        'case "$2" in worker) exec sleep 60 ;; esac\n',
        "gunicorn": 'echo "gunicorn $*" >>calls.log\nexec sleep 60\n',
    }
    for name, body in stand_ins.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def _run(node: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PROVISION_READ_DOTENV": "0",
        "DEBUG": "true",
    }
    return subprocess.run(  # noqa: S603
        [str(node / "scripts" / "run.sh"), *args],
        cwd=node,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _calls(node: Path) -> list[str]:
    log = node / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_demo_dotenv_is_written_for_debug_the_sandbox_and_loopback_with_secrets_of_its_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".env"

    written = preflight.write_demo_dotenv(path)

    values = _dotenv_values(path)
    assert written is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert values["DEBUG"] == "true"
    assert values["SERVER_HOST"] == "127.0.0.1"
    assert values["PSP"] == "sandbox"
    assert values["AGGREGATOR_BASE_URL"] == "http://127.0.0.1:8105"
    assert len(values["SECRET"]) >= 50
    assert values["AGGREGATOR_SECRET_KEY"]
    assert values["AGGREGATOR_CLIENT_ID"]
    preflight.write_demo_dotenv(tmp_path / "other.env")
    assert _dotenv_values(tmp_path / "other.env")["SECRET"] != values["SECRET"]


def test_an_existing_dotenv_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("DEBUG=false\nSECRET=mine\n")

    written = preflight.write_demo_dotenv(path)

    assert written is False
    assert path.read_text() == "DEBUG=false\nSECRET=mine\n"


def test_start_line_states_mode_psps_currencies_and_that_no_real_money_moves() -> None:
    line = preflight.start_line(_settings(CURRENCIES=["NGN", "KES"]), host="127.0.0.1", port=8000)

    assert line.startswith("provision node on http://127.0.0.1:8000 (admin at /admin/): ")
    assert "auto mode, PSP sandbox, currencies NGN, KES, sandbox: no real money moves, DEBUG on;" in line


def test_start_line_says_live_when_a_psp_moves_real_money() -> None:
    settings = _settings(
        PSP=["lenco", "sandbox"], PROVISION_MODE="manual", MANUAL_POLICY="staff", DEBUG=False
    )

    line = preflight.start_line(settings, host="0.0.0.0", port=8001)  # noqa: S104

    assert "manual (staff policy) mode, PSP lenco, sandbox, currencies NGN, LIVE: real payouts;" in line
    assert "DEBUG" not in line


def test_start_line_counts_mtn_sandbox_and_a_local_simulator_as_sandbox() -> None:
    settings = _settings(PSP=["mtn_momo", "lenco"], LENCO_BASE_URL="http://127.0.0.1:9100/access/v1")

    line = preflight.start_line(settings, host="127.0.0.1", port=8000)

    assert "PSP mtn_momo (MTN's sandbox), lenco (local simulator at http://127.0.0.1:9100/access/v1)" in line
    assert "sandbox: no real money moves" in line


def test_run_binds_loopback_unless_told_otherwise_and_writes_the_demo_dotenv(
    node_copy: Path, free_port: int
) -> None:
    result = _run(node_copy, "--dry-run", SERVER_PORT=str(free_port))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith(
        f"dry run: provision node on http://127.0.0.1:{free_port} "
    )
    assert "sandbox: no real money moves" in result.stdout
    assert _dotenv_values(node_copy / ".env")["SERVER_PORT"] == str(free_port)
    assert _calls(node_copy) == []


def test_run_binds_the_interface_it_is_told(node_copy: Path, free_port: int) -> None:
    result = _run(node_copy, "--dry-run", SERVER_HOST="0.0.0.0", SERVER_PORT=str(free_port))  # noqa: S104

    assert result.returncode == 0, result.stderr
    assert f"dry run: provision node on http://0.0.0.0:{free_port} " in result.stdout


def test_run_leaves_an_existing_dotenv_alone(node_copy: Path, free_port: int) -> None:
    (node_copy / ".env").write_text("# mine\n")

    result = _run(node_copy, "--dry-run", SERVER_PORT=str(free_port))

    assert result.returncode == 0, result.stderr
    assert (node_copy / ".env").read_text() == "# mine\n"
    assert "wrote .env" not in result.stdout


def test_a_busy_port_stops_run_before_it_migrates(node_copy: Path, busy_port: int) -> None:
    result = _run(node_copy, SERVER_PORT=str(busy_port))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"make run: port {busy_port} on 127.0.0.1 is already in use (another `make run`, or another "
        "server): stop it, or choose another port with SERVER_PORT in .env (the simulator reads it too)"
    )
    assert _calls(node_copy) == []


def test_run_migrates_after_the_checks_then_starts_web_and_worker(node_copy: Path, free_port: int) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PROVISION_READ_DOTENV": "0",
        "DEBUG": "true",
        "SERVER_PORT": str(free_port),
    }
    process = subprocess.Popen(  # noqa: S603
        [str(node_copy / "scripts" / "run.sh")], cwd=node_copy, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while len(_calls(node_copy)) < 8:  # six set-up commands, then the two processes
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.terminate()
        stdout, _ = process.communicate(timeout=30)
    finally:
        process.kill()

    calls = _calls(node_copy)
    assert calls[:6] == [
        "python manage.py check --fail-level ERROR",
        "python manage.py migrate --no-input -v 0",
        "python manage.py collectstatic --no-input -v 0",
        "python manage.py setup_schedules",
        "python manage.py sync_balances",
        "python manage.py ensure_demo_user",  # after the sync: the demo user books its opening balances
    ]
    assert set(calls[6:]) == {
        f"gunicorn provision.wsgi:application --bind 127.0.0.1:{free_port} --workers 2 --threads 4 "
        "--graceful-timeout 10",
        "python manage.py worker",
    }
    assert f"provision node on http://127.0.0.1:{free_port} (admin at /admin/): auto mode" in stdout
    assert stdout.splitlines()[-1] == "provision node stopped"
