"""django-q2's cluster with its sentinel in the ``manage.py qcluster`` process itself: one process fewer.

django-q2 starts a cluster as two layers of processes: the command's process forks a *sentinel*, which
forks the pusher, the monitor and the workers and guards them, while the command's process only waits
for a signal to pass on. That waiting process is a full copy of the loaded node, and every page the
others have written to since the fork stays in memory for it alone: about 12 MB of the worker's ~150 MB
(PSS, measured by ``make bench``) for a process that does nothing.

Here the command's process is the sentinel. What the two-layer cluster does is kept:

* a SIGTERM or SIGINT to this process stops the cluster in order — the pusher stops claiming tasks,
  each worker finishes its task and takes a STOP, the monitor saves the last results — and then exits;
* the pusher, monitor and workers run with the signal dispositions django-q2's sentinel gives them
  (SIGINT ignored, so a Ctrl-C in a terminal reaches only this process; SIGTERM ends them at once, which
  the guard relies on to end a worker that overran its task's timeout);
* the guard loop, worker recycling and the scheduler run unchanged (``Sentinel.guard``).

A signal to the whole process group (systemd's default, ``kill -- -<pgid>``) ends the children at once
while this process stops the cluster in order; django-q2's stop would then wait for ever to hand a STOP
to a worker that no longer exists through a full task queue. The stop here hands one only to workers
still alive, and gives up on a hand-out once none is.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from django_q.cluster import Sentinel, get_mp_context
from django_q.conf import Conf, logger
from django_q.queues import Queue
from django_q.status import Stat

STOP = "STOP"  # django-q2's pill: a worker that takes it from the task queue exits, as does the monitor
_POLL_SECONDS = 0.1


class InProcessSentinel(Sentinel):
    """django-q2's ``Sentinel``, meant to run in the process that started it (see the module's text)."""

    pool: list[BaseProcess]

    def stop(self) -> None:
        Stat(self).save()
        logger.info("%s stopping cluster processes", self.name)
        self.event_out.set()  # the pusher claims no more tasks and exits
        _wait(lambda: not self.pusher.is_alive(), then=lambda: Stat(self).save())
        self.pool = [process for process in self.pool if process.is_alive()]
        for _ in range(len(self.pool)):
            if not _hand_out(self.task_queue, lambda: any(p.is_alive() for p in self.pool)):
                break
        self.task_queue.close()
        self.task_queue.join_thread()
        _wait(lambda: not any(p.is_alive() for p in self.pool), then=lambda: Stat(self).save())
        self.pool = []
        if self.monitor.is_alive():
            self.result_queue.put(STOP)  # unbounded: never blocks
        self.result_queue.close()
        self.result_queue.join_thread()
        logger.info("%s waiting for the monitor.", self.name)
        _wait(lambda: not self.monitor.is_alive(), then=lambda: Stat(self).save(), seconds=self.timeout or 30)
        Stat(self).save()


def _wait(done: Callable[[], bool], then: Callable[[], None], seconds: float | None = None) -> bool:
    """Poll ``done`` (calling ``then`` between polls) until it is true, or until ``seconds`` have passed."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while not done():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
        then()
    return True


def _hand_out(task_queue: Queue, anyone_alive: Callable[[], bool]) -> bool:
    """Put a STOP in the bounded task queue, waiting for room while a worker is alive to make it."""
    while True:
        try:
            task_queue.put(STOP, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            if not anyone_alive():
                return False


def _children_default_dispositions() -> None:
    """In a forked child: the dispositions django-q2's sentinel process would have handed down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run() -> None:
    """Run a cluster with this process as its sentinel until SIGTERM or SIGINT has stopped it."""
    context = get_mp_context()
    stop_event, start_event = context.Event(), context.Event()
    sentinel = InProcessSentinel(stop_event, start_event, uuid.uuid4(), start=False)
    owner = os.getpid()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a child that was signalled before its own dispositions were set
            _children_default_dispositions()
            if signum == signal.SIGTERM:
                os.kill(os.getpid(), signal.SIGTERM)
            return
        logger.info("qcluster got signal %s", Conf.SIGNAL_NAMES.get(signum, signum))
        # Setting the event here could deadlock: this handler may run while the guard loop holds the
        # event's lock inside stop_event.wait(). A thread takes the lock once the loop has let go of it.
        threading.Thread(target=stop_event.set, name="qcluster-stop", daemon=True).start()

    os.register_at_fork(after_in_child=_children_default_dispositions)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    sentinel.start()  # spawns the processes and guards them until stop_event is set, then stops them
