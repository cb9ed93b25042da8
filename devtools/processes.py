"""Run the node as production does (gunicorn web + django-q2 worker) for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeProcesses:
    url: str
    web: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    log_dir: Path

    def kill_worker(self) -> None:
        """kill -9 the worker's whole process group (the cluster and its children)."""
        with _suppress_lookup():
            os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=10)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ProcessLookupError


def _spawn(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(  # noqa: S603
        args, cwd=ROOT, env=dict(env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def start_worker(env: Mapping[str, str], log_dir: Path, name: str = "worker") -> subprocess.Popen[bytes]:
    return _spawn([sys.executable, "manage.py", "qcluster"], env, log_dir / f"{name}.log")


@contextmanager
def run_node(env: Mapping[str, str], log_dir: Path, *, web_workers: int = 2) -> Iterator[NodeProcesses]:
    """Start gunicorn and qcluster with ``env``; wait for /health; stop both (also on failure)."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    web = _spawn(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "provision.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(web_workers),
            "--threads",
            "4",
        ],
        env,
        log_dir / "web.log",
    )
    worker = start_worker(env, log_dir)
    node = NodeProcesses(url=f"http://127.0.0.1:{port}", web=web, worker=worker, log_dir=log_dir)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{node.url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError(f"node did not start: {(log_dir / 'web.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield node
    finally:
        for process in (node.worker, node.web):
            with _suppress_lookup():
                os.killpg(process.pid, signal.SIGTERM)
        for process in (node.worker, node.web):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with _suppress_lookup():
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
