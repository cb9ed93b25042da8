"""prometheus_client's multiprocess files, named so that processes of different containers can share
one directory.

With ``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its counters and histograms to
``<type>_<process id>.db`` in that directory and ``/metrics`` sums all the files. prometheus_client
identifies a process by its pid alone, but each container has its own pid namespace: the web and the
worker containers sharing one volume would both have a pid 1, 7, 8... and write the same files at once.
``use_container_unique_files`` makes the identifier ``<host name>-<pid>`` instead (a container's host
name is its id). It must run before the first metric is created: the settings module calls it.

Files are never wiped: a restarted process starts a new file, and the files of processes that ended
keep their final counts, so the sums only ever grow (which is what Prometheus expects of counters).
Removing the directory's files resets the counters (Prometheus handles that as a restart).
"""

from __future__ import annotations

import os
import socket


def process_identifier() -> str:
    # "_" separates the parts of the file name that prometheus_client parses back.
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


def use_container_unique_files() -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
