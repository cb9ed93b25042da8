"""Run the node as production does (gunicorn web; ``manage.py worker``: django-q2's cluster and the payout
lane in one process tree) for end-to-end tests and benchmarks.

Also: restart or add workers (chaos tests kill -9 a worker's process groups and start new ones), and
read a process tree's memory from /proc (benchmarks).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    worker: subprocess.Popen[bytes] | None
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    extra_workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_starts: int = 1
    prefix: tuple[str, ...] = ()  # a command every process is started through (``taskset -c 0``)

    def kill_worker(self) -> None:
        """kill -9 the worker's whole process group: the payout lane, the cluster and its children (a
        worker host that dies)."""
        if self.worker is not None:
            _kill_group(self.worker, signal.SIGKILL)
            self.worker.wait(timeout=10)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start a (new) main worker; the previous one must be dead or stopped."""
        self.worker_starts += 1
        self.worker = start_worker(
            self.env, self.log_dir, name=f"worker-{self.worker_starts}", prefix=self.prefix
        )
        return self.worker

    def restart_worker(self) -> subprocess.Popen[bytes]:
        """kill -9 the worker, then start a new one with the same environment."""
        self.kill_worker()
        return self.start_worker()

    def stop_worker(self, timeout: float = 15.0) -> None:
        """Stop the main worker gracefully (SIGTERM to its main process), SIGKILL after ``timeout``."""
        if self.worker is not None:
            _stop(self.worker, timeout)
        self.worker = None

    def add_worker(self, name: str) -> subprocess.Popen[bytes]:
        """Start one more worker on the same database (several worker replicas)."""
        process = start_worker(self.env, self.log_dir, name=name, prefix=self.prefix)
        self.extra_workers.append(process)
        return process

    def workers(self) -> list[subprocess.Popen[bytes]]:
        """Every worker's main process."""
        return [p for p in (self.worker, *self.extra_workers) if p is not None]

    def wait_worker_ready(
        self, process: subprocess.Popen[bytes] | None = None, timeout: float = 20.0
    ) -> bool:
        """Wait until the cluster has spawned its sentinel, pusher, monitor and worker processes."""
        process = process or self.worker
        if process is None:
            return False
        # the worker (which started the cluster), its sentinel, pusher, monitor and workers
        wanted = 4 + int(self.env.get("WORKER_PROCESSES", "1"))  # the setting's default
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if len(process_tree(process.pid)) >= wanted:
                return True
            time.sleep(0.05)
        return False


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ProcessLookupError


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with _suppress_lookup():
        os.killpg(process.pid, sig)


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to the main process, which stops its children in order (django-q2's sentinel dies at once
    on a SIGTERM of its own); SIGKILL to the whole group after ``timeout``."""
    with _suppress_lookup():
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGKILL)
        process.wait(timeout=10)


def _spawn(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(  # noqa: S603
        args, cwd=ROOT, env=dict(env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def node_env_for_tests(aggregator_url: str, **extra: str) -> dict[str, str]:
    """The environment of node processes a test starts: the test run's PostgreSQL database, its secret key
    (the same key signs the tasks the test queues or inspects) and aggregator credentials, the sandbox PSP."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    return {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "provision.settings.base",
        "PROVISION_READ_DOTENV": "0",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SECRET": settings.SECRET_KEY,
        "AGGREGATOR_BASE_URL": aggregator_url,
        "AGGREGATOR_CLIENT_ID": settings.AGGREGATOR_CLIENT_ID,
        "AGGREGATOR_SECRET_KEY": settings.AGGREGATOR_SECRET_KEY,
        "SANDBOX_WEBHOOK_SECRET": settings.SANDBOX_WEBHOOK_SECRET,
        "CURRENCIES": "NGN",
        "PSP": "sandbox",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "info",
        **extra,
    }


def start_worker(
    env: Mapping[str, str], log_dir: Path, name: str = "worker", prefix: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """``manage.py worker``: the django-q2 cluster and the payout lane, as the default deployment runs."""
    return _spawn([*prefix, sys.executable, "manage.py", "worker"], env, log_dir / f"{name}.log")


@contextmanager
def run_node(
    env: Mapping[str, str],
    log_dir: Path,
    *,
    web_workers: int = 2,
    threads: int = 4,
    access_log: bool = False,
    with_worker: bool = True,
    prefix: Sequence[str] = (),
) -> Iterator[NodeProcesses]:
    """Start gunicorn and the worker (cluster and payout lane) with ``env``; wait for /health; stop
    everything (also on failure).

    ``access_log`` adds ``--access-logfile -`` (the Dockerfile and ``make run`` do); ``with_worker=False``
    starts the web only (``NodeProcesses.start_worker()`` starts the worker later). ``prefix`` is
    a command every process is started through, e.g. ``("taskset", "-c", "0")`` to pin the node to one
    core (it must ``exec`` its argument, so the process id is the node's).
    """
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    args = [
        *prefix,
        sys.executable,
        "-m",
        "gunicorn",
        "provision.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(web_workers),
        "--threads",
        str(threads),
    ]
    if access_log:
        args += ["--access-logfile", "-"]
    web = _spawn(args, env, log_dir / "web.log")
    worker = start_worker(env, log_dir, prefix=prefix) if with_worker else None
    node = NodeProcesses(
        url=f"http://127.0.0.1:{port}",
        web=web,
        worker=worker,
        log_dir=log_dir,
        env=dict(env),
        prefix=tuple(prefix),
    )
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
        processes = [*node.workers(), node.web]
        for process in processes:
            _kill_group(process, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_group(process, signal.SIGKILL)
                process.wait(timeout=10)


# --- /proc: process trees and their memory ---------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: the fields after it are fixed.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` now."""
    return _children_map().get(pid, [])


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        if Path(f"/proc/{current}").exists():
            tree.append(current)
        todo.extend(children.get(current, []))
    return tree


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    rss_kb: int
    pss_kb: int
    private_kb: int  # pages no other process maps (Private_Clean + Private_Dirty)


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_kb: int
    pss_kb: int
    members: tuple[ProcessMemory, ...] = ()


def process_memory(pid: int) -> ProcessMemory | None:
    """One process's resident, proportional and private memory, from /proc/<pid>/smaps_rollup."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        amount = rest.split()
        if amount and amount[0].isdigit():
            values[name] = int(amount[0])
    return ProcessMemory(
        pid=pid,
        rss_kb=values.get("Rss", 0),
        pss_kb=values.get("Pss", 0),
        private_kb=values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    )


def tree_memory(pid: int) -> Memory:
    """Resident (RSS) and proportional (PSS) memory of a process tree, with each member's figures."""
    members = tuple(m for m in map(process_memory, process_tree(pid)) if m is not None)
    return Memory(
        processes=len(members),
        rss_kb=sum(m.rss_kb for m in members),
        pss_kb=sum(m.pss_kb for m in members),
        members=members,
    )


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time (user + system) used so far by these processes, from /proc/<pid>/stat: their own time and
    that of their children that ended and were reaped (counted in the parent's children's times)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime (stat's 14-17)
    return total / ticks


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by a tree: its live processes and those that ended (django-q2 recycles worker
    processes, so a worker tree loses members as it runs)."""
    return cpu_seconds(process_tree(pid))
