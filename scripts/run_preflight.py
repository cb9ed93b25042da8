"""What `make run` (scripts/run.sh) does before it touches the database.

    python scripts/run_preflight.py dotenv    write a demo .env next to manage.py when there is none
    python scripts/run_preflight.py check     load the settings, check the port is free; print the host,
                                              the port and the start line, one per line

``dotenv``: the demo .env makes every ``manage.py`` command of the README work in any terminal as written
(``provision.env`` reads .env; ``make run`` used to set ``DEBUG=true`` only in its own process, so the
simulator in a second terminal stopped with ``SECRET is required``). DEBUG, the sandbox PSP, loopback
only, a secret key and aggregator credentials generated for this machine (the simulator signs with the
node's own AGGREGATOR_CLIENT_ID / AGGREGATOR_SECRET_KEY, so both read them from this file). An existing
.env is never touched.

``check``: binds 127.0.0.1 unless SERVER_HOST is set (in the environment or .env): DEBUG with a demo
superuser has no business on every interface. Exits 1 with one line when the settings are wrong or the
port is taken, so start-up stops before it migrates anything.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
DEMO_SERVER_HOST = "127.0.0.1"
DEMO_AGGREGATOR_PORT = 8105  # the simulator's default port, and the node's default AGGREGATOR_BASE_URL

DEMO_DOTENV = """\
# Written by `make run` for a local demo: DEBUG, the sandbox PSP (no real money), loopback only, secrets
# generated for this machine. Not a production configuration: see .env.example and docs/configuration.md.
# Every manage.py command reads this file, e.g. the aggregator simulator in a second terminal:
#   .venv/bin/python manage.py simulate_aggregator --orders 10 --rate 2
# Delete it to get a fresh one on the next `make run`.
DEBUG=true
SERVER_HOST={host}
SERVER_PORT={port}
SECRET={secret}
PSP=sandbox
PROVISION_MODE=auto
CURRENCIES=NGN
# The aggregator simulator (manage.py simulate_aggregator) listens here and signs with these credentials.
AGGREGATOR_BASE_URL=http://127.0.0.1:{aggregator_port}
AGGREGATOR_CLIENT_ID={client_id}
AGGREGATOR_SECRET_KEY={aggregator_secret}
"""


def _say(line: str, *, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(line + "\n")


def demo_dotenv_text(*, port: str = "8000") -> str:
    return DEMO_DOTENV.format(
        host=DEMO_SERVER_HOST,
        port=port,
        secret=secrets.token_urlsafe(48),
        aggregator_port=DEMO_AGGREGATOR_PORT,
        client_id=uuid.uuid4(),
        aggregator_secret=secrets.token_urlsafe(32),
    )


def write_demo_dotenv(path: Path) -> bool:
    """Create ``path`` (mode 600) with the demo settings; False when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    # SERVER_PORT from the environment (SERVER_PORT=8001 make run) is kept, so the simulator finds the node.
    port = os.environ.get("SERVER_PORT", "").strip() or "8000"
    with os.fdopen(fd, "w") as handle:
        handle.write(demo_dotenv_text(port=port))
    return True


def port_problem(host: str, port: int) -> str | None:
    """Why gunicorn could not listen on ``host:port`` now, or None. SO_REUSEADDR (as gunicorn sets it):
    only a listener refuses the bind, not connections of an earlier run in TIME_WAIT."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bare, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another `make run`, or another server): "
                    f"stop it, or choose another port with SERVER_PORT in .env (the simulator reads it too)"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _psp_label(name: str, settings: Any) -> tuple[str, bool]:
    """``(label, live)`` for one enabled PSP: live means real money moves."""
    if name == "sandbox":
        return "sandbox", False
    if name == "mtn_momo":
        environment = str(settings.MTN_MOMO_TARGET_ENVIRONMENT)
        if environment == "sandbox":
            return "mtn_momo (MTN's sandbox)", False
        return f"mtn_momo ({environment})", True
    base_url = str(getattr(settings, f"{name.upper()}_BASE_URL", ""))
    host = urlsplit(base_url).hostname or ""
    if host in {"127.0.0.1", "localhost", "::1"}:
        return f"{name} (local simulator at {base_url})", False
    return name, True


def start_line(settings: Any, *, host: str, port: int) -> str:
    psps = [_psp_label(name, settings) for name in settings.PSP]
    live = any(is_live for _, is_live in psps)
    mode = str(settings.PROVISION_MODE)
    if mode == "manual":
        mode = f"manual ({settings.MANUAL_POLICY} policy)"
    money = "LIVE: real payouts" if live else "sandbox: no real money moves"
    return (
        f"provision node on http://{host}:{port} (admin at /admin/): {mode} mode, "
        f"PSP {', '.join(label for label, _ in psps)}, currencies {', '.join(settings.CURRENCIES)}, "
        f"{money}{', DEBUG on' if settings.DEBUG else ''}; "
        "web and worker (django-q2 and the lane) running; Ctrl-C stops all"
    )


def check() -> int:
    # Imported here, not at the top: this checkout's packages first (whatever the virtualenv was installed
    # from), and the settings only once .env is read and SERVER_HOST has its loopback default.
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provision.settings.base")
    try:
        import provision.env  # noqa: F401  (reads .env into the environment, below what is already set)

        os.environ.setdefault("SERVER_HOST", DEMO_SERVER_HOST)
        from django.conf import settings

        host, port = str(settings.SERVER_HOST), int(settings.SERVER_PORT)
    except ImproperlyConfigured as exc:
        _say(f"configuration error: {exc}", stream=sys.stderr)
        return 1
    problem = port_problem(host, port)
    if problem:
        _say(f"make run: {problem}", stream=sys.stderr)
        return 1
    _say(host)
    _say(str(port))
    _say(start_line(settings, host=host, port=port))
    return 0


def main(argv: list[str]) -> int:
    if argv == ["dotenv"]:
        if write_demo_dotenv(ROOT / ".env"):
            _say(
                "make run: wrote .env for a local demo (DEBUG, sandbox PSP, 127.0.0.1, generated secrets); "
                "edit it or delete it for a fresh one"
            )
        return 0
    if argv == ["check"]:
        return check()
    _say(__doc__ or "", stream=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
