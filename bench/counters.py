"""Per-process counts of SQL statements, writes and transaction commits, for the per-order figures.

Installed by ``BenchConfig.ready`` when ``BENCH_STATS_DIR`` is set (bench settings only). Each process
(gunicorn worker, qcluster sentinel / pusher / monitor / worker) writes ``<role>-<pid>.json`` into that
directory from a daemon thread every 0.2 s when its counts changed; forked children start from zero and
get their own thread. The bench sums the files before and after a measured batch. Counting is on only
while ``<directory>/counting`` exists (``counting_switch``), which the same thread checks: the bench's
throughput phases run without it.

What is counted: every statement through Django's cursor (``execute_wrapper``), statements that write
(INSERT / UPDATE / DELETE), and explicit commits (``connection.commit()``: the end of every outermost
``transaction.atomic`` block). Statements run in autocommit mode outside ``atomic`` commit implicitly;
on PostgreSQL the bench also counts write transactions from the transaction id counter.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_counts = {"queries": 0, "writes": 0, "commits": 0}
_state: dict[str, Any] = {"dir": None, "written": None, "counting": False}
_WRITES = ("INSERT", "UPDATE", "DELETE")
_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?([A-Za-z0-9_]+)"?', re.IGNORECASE)
_by_statement: dict[str, int] = {}


def _role() -> str:
    argv = " ".join(sys.argv)
    if "gunicorn" in argv:
        return "web"
    if "qcluster" in argv:
        return "worker"
    return "other"


def _count(name: str, writes: bool = False) -> None:
    with _lock:
        _counts[name] += 1
        if writes:
            _counts["writes"] += 1


def _statement_key(sql: str) -> str:
    """``VERB table`` of a statement (e.g. ``SELECT orders_order``), for the breakdown by statement."""
    text = sql.lstrip()
    verb = text[:6].upper().rstrip()
    match = _TABLE.search(text)
    return f"{verb} {match.group(1) if match else '-'}"


def counting_switch(directory: str | Path) -> Path:
    """The file whose presence turns counting on in every process (within 0.2 s): the bench counts during
    its per-order batch only, so the throughput phases run the node as production runs it."""
    return Path(directory) / "counting"


def _execute_wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    if not _state["counting"]:
        return execute(sql, params, many, context)
    key = _statement_key(sql)
    with _lock:
        _counts["queries"] += 1
        if key[:6] in _WRITES:
            _counts["writes"] += 1
        _by_statement[key] = _by_statement.get(key, 0) + 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if not getattr(connection, "_bench_counted", False):
        connection._bench_counted = True
        connection.execute_wrappers.append(_execute_wrapper)
        original_commit = connection.commit

        def commit() -> None:
            if _state["counting"]:
                _count("commits")
            original_commit()

        connection.commit = commit


def _flush() -> None:
    directory = _state["dir"]
    if directory is None:
        return
    _state["counting"] = counting_switch(directory).exists()
    with _lock:
        snapshot: dict[str, Any] = dict(_counts)
        snapshot["by_statement"] = dict(_by_statement)
    if snapshot == _state["written"] and _state.get("pid") == os.getpid():
        return
    role = _role()
    if role == "other":
        return
    path = Path(directory) / f"{role}-{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"role": role, "pid": os.getpid(), **snapshot}))
    os.replace(tmp, path)
    _state["written"] = snapshot
    _state["pid"] = os.getpid()


def _flusher() -> None:
    stop = threading.Event()
    while not stop.wait(0.2):
        try:
            _flush()
        except OSError:
            pass


def _start_flusher() -> None:
    threading.Thread(target=_flusher, name="bench-counters", daemon=True).start()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for key in _counts:
        _counts[key] = 0
    _by_statement.clear()
    _state["written"] = None
    _start_flusher()


def install(directory: str) -> None:
    from django.db.backends.signals import connection_created

    if _state["dir"] is not None:
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    _state["dir"] = directory
    connection_created.connect(_on_connection, dispatch_uid="bench-counters")
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _start_flusher()


def read_totals(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Sum of every process's counts, by role (``web``, ``worker``), from the files in ``directory``."""
    totals: dict[str, dict[str, Any]] = {}
    for path in Path(directory).glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        role = totals.setdefault(
            str(data["role"]), {"queries": 0, "writes": 0, "commits": 0, "processes": 0, "by_statement": {}}
        )
        for key in ("queries", "writes", "commits"):
            role[key] += int(data.get(key, 0))
        role["processes"] += 1
        for key, value in dict(data.get("by_statement", {})).items():
            role["by_statement"][key] = role["by_statement"].get(key, 0) + int(value)
    return totals
