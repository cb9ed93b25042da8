"""``manage.py qcluster`` runs django-q2's sentinel in its own process (provision.cluster): real clusters
on the test run's PostgreSQL database, started, signalled and watched from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Task
from django_q.tasks import async_task

from devtools.processes import children_of, node_env_for_tests, process_tree, start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WORKERS = 2
UNREACHABLE_AGGREGATOR = "http://127.0.0.1:9"  # the cluster's own tasks here never call it


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = node_env_for_tests(UNREACHABLE_AGGREGATOR, WORKER_PROCESSES=str(WORKERS))
    process = start_worker(env, tmp_path)
    try:
        _wait_for(lambda: len(process_tree(process.pid)) == 1 + 2 + WORKERS, "the cluster to start")
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _wait_for(condition: object, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _queue_sleeps(count: int, seconds: float) -> list[str]:
    return [async_task("time.sleep", seconds, save=True, sync=False) for _ in range(count)]


def _waiting_in_database() -> int:
    """Queued tasks no pusher has taken yet (the ORM broker locks a task for a while as it hands it out)."""
    return OrmQ.objects.filter(lock__lte=timezone.now()).count()


def _stopped_within(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def test_the_cluster_process_is_the_sentinel_of_its_pusher_monitor_and_workers(
    cluster: subprocess.Popen[bytes],
) -> None:
    children = process_tree(cluster.pid)[1:]

    assert len(children) == 2 + WORKERS  # pusher, monitor, workers: no separate sentinel between them
    assert sorted(children_of(cluster.pid)) == sorted(children)

    (task_id,) = _queue_sleeps(1, 0)
    _wait_for(lambda: Task.objects.filter(id=task_id, success=True).exists(), "the task's result")


def test_sigterm_to_the_cluster_process_lets_running_tasks_finish_then_ends_every_process(
    cluster: subprocess.Popen[bytes],
) -> None:
    task_ids = _queue_sleeps(WORKERS, 1.5)
    _wait_for(lambda: _waiting_in_database() == 0, "the pusher to hand the tasks out")
    children = process_tree(cluster.pid)[1:]

    os.kill(cluster.pid, signal.SIGTERM)

    assert _stopped_within(cluster, 20) == 0
    assert Task.objects.filter(id__in=task_ids, success=True).count() == WORKERS  # finished, results saved
    assert not [child for child in children if _alive(child)]


def test_ctrl_c_reaches_the_whole_group_but_only_the_cluster_process_acts_on_it(
    cluster: subprocess.Popen[bytes],
) -> None:
    task_ids = _queue_sleeps(WORKERS, 1.5)
    _wait_for(lambda: _waiting_in_database() == 0, "the pusher to hand the tasks out")

    os.killpg(cluster.pid, signal.SIGINT)  # what a terminal's Ctrl-C does

    assert _stopped_within(cluster, 20) == 0
    assert Task.objects.filter(id__in=task_ids, success=True).count() == WORKERS


def test_sigterm_to_the_whole_group_with_a_full_task_queue_ends_the_cluster_without_hanging(
    cluster: subprocess.Popen[bytes],
) -> None:
    # More tasks than the workers and their prefetch queue (workers squared) hold: the queue stays full.
    _queue_sleeps(WORKERS + WORKERS**2 + 2, 5)
    _wait_for(lambda: _waiting_in_database() <= 2, "the pusher to fill the task queue")
    children = process_tree(cluster.pid)[1:]

    os.killpg(cluster.pid, signal.SIGTERM)  # systemd's default stop: every process of the group at once

    assert _stopped_within(cluster, 10) == 0
    assert not [child for child in children if _alive(child)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"
