"""gunicorn settings shared by every way the node's web tier starts (``make run``, the Dockerfile, the
end-to-end tests and the benchmark all run gunicorn from the project's root, where it reads this file).

The application is imported once in the master before the workers are forked (``preload_app``), and the
objects it created are moved out of the garbage collector's reach before each fork (``gc.freeze``), so the
workers share those memory pages instead of each copying them: the interpreter, Django and the project
are in memory once. Command-line flags (bind, workers, threads) still take precedence over this file.
"""

from __future__ import annotations

import gc
from typing import Any

preload_app = True
gc.disable()  # in the master, until the fork: no collection leaves holes in pages the workers share


def pre_fork(server: Any, worker: Any) -> None:
    from provision.warm import warm_web

    warm_web()  # the URLconf and views, imported here once instead of in each worker on its first request
    gc.freeze()  # what the master has created so far is never collected: its pages stay shared


def post_fork(server: Any, worker: Any) -> None:
    gc.enable()  # each worker collects its own garbage as usual
