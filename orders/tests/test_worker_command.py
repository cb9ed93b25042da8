"""``manage.py worker``: django-q2's cluster and the payout lane in one process tree, stopped together.

Real processes on the test run's PostgreSQL (PostgreSQL only: the processes share the test database).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from devtools.processes import node_env_for_tests, process_tree, start_worker
from provision.models import Heartbeat

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLUSTER_PROCESSES = 5  # sentinel, pusher, monitor and two workers (WORKER_PROCESSES=2)


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = node_env_for_tests("http://127.0.0.1:9", WORKER_PROCESSES="2")
    process = start_worker(env, tmp_path)
    try:
        assert _wait(lambda: len(process_tree(process.pid)) > CLUSTER_PROCESSES, 30), (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
        yield process
    finally:
        if process.poll() is None:
            with_group = process_tree(process.pid)
            process.kill()
            for pid in with_group:
                subprocess.run(["kill", "-9", str(pid)], check=False, capture_output=True)  # noqa: S603, S607
            process.wait(timeout=10)


def _lane_beat_since(started: object) -> bool:
    return Heartbeat.objects.filter(name="payout_lane", beat_at__gte=started).exists()


def test_one_worker_process_runs_the_cluster_and_the_payout_lane_and_sigterm_stops_both(
    worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    started = timezone.now()
    assert _wait(lambda: _lane_beat_since(started), 20), "the payout lane in the worker never beat"
    tree = process_tree(worker.pid)
    assert len(tree) == 1 + CLUSTER_PROCESSES, tree

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert _wait(lambda: all(not Path(f"/proc/{pid}").exists() for pid in tree[1:]), 10), tree
    log = (tmp_path / "worker.log").read_text()
    assert "payout_lane.stopping" in log
    assert "worker stopped" in log


def test_when_the_cluster_dies_the_worker_exits_non_zero_to_be_restarted(
    worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    sentinel = next(pid for pid in process_tree(worker.pid) if pid != worker.pid)
    cluster = process_tree(sentinel)

    for pid in cluster:
        subprocess.run(["kill", "-9", str(pid)], check=False)  # noqa: S603, S607

    assert worker.wait(timeout=30) != 0
    log = (tmp_path / "worker.log").read_text()
    assert "worker.cluster_gone" in log
    assert "payout_lane.stopping" in log
