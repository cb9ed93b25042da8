"""``python -m bench.profile [worker|intake]``: where the time goes per order, in one process under cProfile.

Offers ``--orders`` orders to a fresh database (SQLite in a temp dir, or PostgreSQL with ``--db postgres``
through ``scripts/with-postgres.sh``), with the project's ``AggregatorSimulator`` as the aggregator on
loopback, then runs the worker's side of every order in this process exactly as django-q2 would run it:
``orders.tasks.order_process`` first, then every task the pipeline queued (taken from the ORM broker's
queue, oldest first) until the queue is empty and every order is final. django-q2's own cluster
bookkeeping (pusher, monitor, result rows) is not in this figure; ``make bench`` counts it.

Prints CPU and SQL statements per order, tasks per order, and the top functions by cumulative and own
time. Only the main thread is profiled (the simulator's threads are not). ``intake`` does the same for
signed ``POST /new_order`` next to the floor view (``bench/views.py``), through the whole middleware
stack with Django's test client. ``--no-profile`` gives CPU figures without the profiler's overhead.

    scripts/with-postgres.sh .venv/bin/python -m bench.profile --db postgres --orders 200
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import counters
from bench.run import ACCOUNT, CLIENT_ID, FUNDS, SECRET, node_settings, out


def _configure(db: str, workdir: Path) -> None:
    if db == "postgres":
        url = os.environ.get("TEST_DATABASE_URL", "")
        if not url:
            raise SystemExit("--db postgres needs TEST_DATABASE_URL (run through scripts/with-postgres.sh)")
        import psycopg

        name = f"provision_profile_{os.getpid()}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = url.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{workdir / 'profile.sqlite3'}"
    os.environ.update(
        {
            **node_settings(url),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "info"),  # as the bench runs the node
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        }
    )


def _run_queued() -> int:
    """Run every task in the ORM broker's queue (oldest first) in this process; return how many ran."""
    from django.utils.module_loading import import_string
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage
    from django_q.utils import get_func_repr  # noqa: F401  (import check: the django-q2 API in use)

    ran = 0
    while True:
        row = OrmQ.objects.order_by("id").first()
        if row is None:
            return ran
        OrmQ.objects.filter(pk=row.pk).delete()
        task = SignedPackage.loads(row.payload)
        func = task["func"]
        (import_string(func) if isinstance(func, str) else func)(*task["args"], **task["kwargs"])
        ran += 1


def _report(profiler: cProfile.Profile | None, top: int) -> None:
    if profiler is None:
        return
    for sort in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(sort).print_stats(top)
        out(f"--- top {top} by {sort} ---")
        out("\n".join(line for line in stream.getvalue().splitlines() if line.strip()[:1].isdigit()))


def _statement_counter() -> tuple[Counter[str], Any]:
    statements: Counter[str] = Counter()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements[counters._statement_key(sql)] += 1
        return execute(sql, params, many, context)

    return statements, count


def _per(statements: Counter[str], n: int) -> str:
    return f"{sum(statements.values()) / n:.1f}: " + ", ".join(
        f"{k} {v / n:.1f}" for k, v in statements.most_common()
    )


def profile_worker(args: argparse.Namespace, simulator: Any) -> int:
    from django.db import connection
    from django.utils import timezone
    from django_q.models import OrmQ

    from orders import services, tasks
    from orders.models import Order, OrderStatus

    pks = []
    for _ in range(args.orders):
        sim = simulator.offer("5000", notify=False, account_identifier=ACCOUNT)
        offer = services.Offer(
            order_id=sim.id,
            flavour="new_order",
            amount=Decimal(sim.amount),
            currency=sim.currency,
            institution=sim.institution,
            accept_deadline=timezone.now() + timedelta(seconds=600),
        )
        order, _ = services.order_receive(offer=offer)
        pks.append(order.pk)
    OrmQ.objects.all().delete()  # nothing should be queued yet; the loop below runs order_process itself

    statements, count = _statement_counter()
    profiler = None if args.no_profile else cProfile.Profile(time.process_time)  # CPU, not waits
    tasks_run = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(count):
        if profiler:
            profiler.enable()
        for pk in pks:
            tasks.order_process(order_pk=pk)
            tasks_run += 1 + _run_queued()
        if profiler:
            profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

    n = len(pks)
    final = Counter(Order.objects.filter(pk__in=pks).values_list("status", flat=True))
    out(f"worker path, {args.db}: {n} orders, final states {dict(final)}")
    out(
        f"per order: CPU {cpu * 1000 / n:.1f} ms, wall {wall * 1000 / n:.1f} ms "
        f"(this process{'' if profiler is None else ', profiler on'}), tasks {tasks_run / n:.2f}"
    )
    out(f"statements per order {_per(statements, n)}")
    _report(profiler, args.top)
    return 0 if final.get(OrderStatus.FULFILLED, 0) == n else 1


def profile_intake(args: argparse.Namespace) -> int:
    """Signed POST /new_order and the floor view through the whole middleware stack (Django's test
    client, no network): CPU and statements per request of each, and the profile of /new_order."""
    from django.db import connection
    from django.test import Client

    from bench import load

    client = Client()
    results: dict[str, float] = {}
    profiler = None if args.no_profile else cProfile.Profile(time.process_time)  # CPU, not waits
    for name, factory in (("floor", load.floor_factory()), ("new_order", load.new_order_factory(SECRET))):
        requests = [factory() for _ in range(args.orders)]
        statements, count = _statement_counter()
        cpu0 = time.process_time()
        with connection.execute_wrapper(count):
            if profiler and name == "new_order":
                profiler.enable()
            for path, body, headers in requests:
                response = client.generic("POST", path, data=body, content_type="", headers=headers)
                if response.status_code >= 300:
                    raise SystemExit(f"{path} answered {response.status_code}: {response.content[:300]!r}")
            if profiler and name == "new_order":
                profiler.disable()
        results[name] = (time.process_time() - cpu0) * 1000 / len(requests)
        out(f"{name}: CPU {results[name]:.2f} ms per request, statements {_per(statements, len(requests))}")
    out(f"CPU ratio new_order / floor: {results['new_order'] / results['floor']:.2f}")
    _report(profiler, args.top)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", choices=["worker", "intake"], default="worker")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true", help="CPU and statements only, no cProfile")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="provision-profile-"))
    _configure(args.db, workdir)
    import django

    from devtools.aggregator_sim import AggregatorSimulator

    simulator = AggregatorSimulator(client_id=CLIENT_ID, secret=SECRET, validity_seconds=600).start()
    os.environ["AGGREGATOR_BASE_URL"] = simulator.base_url
    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)
    call_command("bench_db", "prepare", "--amount", FUNDS, stdout=io.StringIO())
    try:
        return profile_intake(args) if args.mode == "intake" else profile_worker(args, simulator)
    finally:
        simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
