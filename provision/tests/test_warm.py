"""What a forking process loaded stays shared with its children: gunicorn's master imports what its workers
would otherwise each import on their first request, and a forked process leaves inherited objects alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from provision.testing import subprocess_env

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, django
django.setup()
from provision import warm
before = set(sys.modules)
getattr(warm, sys.argv[1])()
print(" ".join(sorted(set(sys.modules) - before)))
"""


def imported_by(function: str) -> set[str]:
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", PROBE, function],
        cwd=ROOT,
        env=subprocess_env(PSP="sandbox"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


def test_the_web_warm_up_imports_the_urlconf_and_the_views_it_names() -> None:
    assert {"provision.urls", "orders.api", "psp.webhooks", "drf_spectacular.views"} <= imported_by(
        "warm_web"
    )


FORK_PROBE = """
import gc, os, django
django.setup()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, str(gc.get_freeze_count()).encode())
    os._exit(0)
os.close(write)
os.waitpid(pid, 0)
print(gc.get_freeze_count(), os.read(read, 64).decode(), len(gc.get_objects()))
"""


def test_a_forked_process_leaves_the_objects_it_inherited_out_of_its_collections() -> None:
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", FORK_PROBE],
        cwd=ROOT,
        env=subprocess_env(PSP="sandbox"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    in_parent, in_child, tracked = (int(n) for n in result.stdout.split())
    assert in_parent == 0  # the forking process collects its own objects as before
    assert in_child > tracked // 2  # the child froze what it inherited: the loaded project
