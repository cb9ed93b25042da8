"""``manage.py simulate_aggregator``: play the Go aggregator against a running node (demos, e2e, benchmarks).

Offers ``--orders`` orders at ``--rate`` per second to the node (``/new_order`` or the seed ``/orders``),
serves the provider API the node calls back (accept, fulfil, ...), runs the ``/tx_status`` task, and
waits until every order is settled or ``--duration`` passes. Prints one line per order and a summary;
exits 0 when every order ended validated, declined or cancelled and the node broke no protocol rule,
1 otherwise. ``--serve`` only serves (the node's aggregator for ``make run``) until Ctrl-C; offer orders
then with ``curl -X POST http://127.0.0.1:8105/_sim/offer -d '{"amount":"5000"}'``.

The simulator uses the node's own AGGREGATOR_CLIENT_ID / AGGREGATOR_SECRET_KEY, so the node must point
its AGGREGATOR_BASE_URL at ``http://127.0.0.1:<--port>``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from decimal import Decimal, InvalidOperation
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

OK_OUTCOMES = frozenset({"validated", "declined", "cancelled"})


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class Command(BaseCommand):
    help = "Simulate the Go aggregator against a running node: offer orders, serve its API, poll tx_status."

    def add_arguments(self, parser: CommandParser) -> None:
        default_port = urlsplit(str(settings.AGGREGATOR_BASE_URL)).port or 8105
        parser.add_argument(
            "--node-url",
            default=f"http://127.0.0.1:{settings.SERVER_PORT}",
            help="the node's base URL (its host identifier); default http://127.0.0.1:<SERVER_PORT>",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=default_port,
            help="port to serve on (127.0.0.1); default from AGGREGATOR_BASE_URL",
        )
        parser.add_argument("--orders", type=int, default=10, help="how many orders to offer")
        parser.add_argument("--rate", type=float, default=2.0, help="orders offered per second")
        parser.add_argument("--flavour", choices=("new_order", "seed"), default="new_order")
        parser.add_argument("--currency", default="NGN")
        parser.add_argument("--amount", default="5000", help="fiat amount of each order")
        parser.add_argument("--institution", default="ABNGNGLA")
        parser.add_argument(
            "--duration", type=float, default=120.0, help="seconds to wait for all orders to settle"
        )
        parser.add_argument(
            "--validity",
            type=float,
            default=float(getattr(settings, "ORDER_REQUEST_VALIDITY", 30)),
            help="seconds an order request stays open for accept (ORDER_REQUEST_VALIDITY)",
        )
        parser.add_argument(
            "--poll-interval", type=float, default=32.0, help="seconds between /tx_status runs"
        )
        parser.add_argument(
            "--tx-status-after",
            type=float,
            default=30.0,
            help="age of an unfulfilled order before /tx_status",
        )
        parser.add_argument(
            "--fulfilment-validity",
            type=float,
            default=60.0,
            help="age of a pending fulfilment before /tx_status",
        )
        parser.add_argument("--serve", action="store_true", help="only serve (and poll) until Ctrl-C")

    def handle(self, *args: Any, **options: Any) -> None:
        from devtools.aggregator_sim import AggregatorSimulator

        self._validate(options)
        currencies = list(dict.fromkeys([*getattr(settings, "CURRENCIES", []), options["currency"]]))
        simulator = AggregatorSimulator(
            client_id=settings.AGGREGATOR_CLIENT_ID,
            secret=settings.AGGREGATOR_SECRET_KEY,
            node_url=options["node_url"],
            port=options["port"],
            validity_seconds=options["validity"],
            currencies=currencies,
            tx_status_after=options["tx_status_after"],
            fulfilment_validity=options["fulfilment_validity"],
        )
        try:
            simulator.start(poll_interval=options["poll_interval"])
        except OSError as exc:
            raise CommandError(f"cannot listen on 127.0.0.1:{options['port']}: {exc}") from exc
        self._warn_if_node_points_elsewhere(simulator.base_url)
        try:
            if options["serve"]:
                self._serve(simulator, options)
            else:
                self._run(simulator, options)
        finally:
            simulator.stop()

    # ------------------------------------------------------------------------------------------------

    @staticmethod
    def _validate(options: dict[str, Any]) -> None:
        if options["orders"] < 1:
            raise CommandError("--orders must be at least 1")
        if options["rate"] <= 0 or options["duration"] <= 0 or options["validity"] <= 0:
            raise CommandError("--rate, --duration and --validity must be positive")
        if options["poll_interval"] <= 0:
            raise CommandError("--poll-interval must be positive")
        if not 0 <= options["port"] <= 65535:
            raise CommandError("--port must be a TCP port number")
        try:
            amount = Decimal(str(options["amount"]))
        except InvalidOperation:
            raise CommandError("--amount must be a decimal number") from None
        if not amount.is_finite() or amount <= 0:
            raise CommandError("--amount must be positive")

    def _warn_if_node_points_elsewhere(self, base_url: str) -> None:
        configured = str(settings.AGGREGATOR_BASE_URL).rstrip("/")
        if configured != base_url:
            self.stderr.write(
                f"note: this process's AGGREGATOR_BASE_URL is {configured}; the node must use {base_url} "
                "to reach the simulator"
            )

    def _serve(self, simulator: Any, options: dict[str, Any]) -> None:
        stop = threading.Event()
        started = time.monotonic()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, on_signal)
        example = '{"amount":"5000"}'
        self.stdout.write(
            f"aggregator simulator on {simulator.base_url} for node {options['node_url']} "
            f"(validity {options['validity']:g} s, tx_status every {options['poll_interval']:g} s); "
            f"offer with: curl -X POST {simulator.base_url}/_sim/offer -d '{example}'; Ctrl-C stops"
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write("aggregator simulator stopped")
        self._report(simulator, time.monotonic() - started, require_settled=False)

    def _run(self, simulator: Any, options: dict[str, Any]) -> None:
        count, rate = options["orders"], options["rate"]
        started = time.monotonic()
        deadline = started + options["duration"]
        self.stdout.write(
            f"offering {count} {options['flavour']} orders of {options['amount']} {options['currency']} "
            f"at {rate:g}/s to {options['node_url']} (simulator {simulator.base_url})"
        )
        interrupted = False
        try:
            for index in range(count):
                due = started + index / rate
                while (now := time.monotonic()) < due:
                    time.sleep(min(0.05, due - now))
                if time.monotonic() >= deadline:
                    self.stderr.write(f"--duration reached after {index} offers")
                    break
                simulator.offer(
                    options["amount"],
                    currency=options["currency"],
                    institution=options["institution"],
                    flavour=options["flavour"],
                    block=False,
                )
            while time.monotonic() < deadline and not simulator.all_settled():
                time.sleep(0.2)
        except KeyboardInterrupt:
            interrupted = True
            self.stderr.write("interrupted")
        elapsed = time.monotonic() - started
        ok = self._report(simulator, elapsed, require_settled=True) and not interrupted
        if not ok:
            raise CommandError(
                "not every order ended validated, declined or cancelled (see above)", returncode=1
            )

    def _report(self, simulator: Any, elapsed: float, *, require_settled: bool) -> bool:
        orders = simulator.orders()
        for order in orders:
            self.stdout.write(
                f"{order.id}  {order.outcome:<11}  offer→accept {_ms(order.offer_to_accept_ms):>6} ms  "
                f"offer→fulfilled {_ms(order.offer_to_fulfilled_ms):>6} ms"
                + (f"  accepts={order.accept_count}" if order.accept_count > 1 else "")
                + (f"  txIds={order.tx_ids}" if len(set(order.tx_ids)) > 1 else "")
            )
        outcomes: dict[str, int] = {}
        for order in orders:
            outcomes[order.outcome] = outcomes.get(order.outcome, 0) + 1
        parts = [f"{n} {outcome}" for outcome, n in sorted(outcomes.items())]
        self.stdout.write(f"summary: {len(orders)} orders in {elapsed:.1f} s: {', '.join(parts) or 'none'}")
        for label, values in (
            ("offer→accept", [o.offer_to_accept_ms for o in orders if o.offer_to_accept_ms is not None]),
            (
                "offer→fulfilled",
                [o.offer_to_fulfilled_ms for o in orders if o.offer_to_fulfilled_ms is not None],
            ),
        ):
            if values:
                self.stdout.write(
                    f"  {label}: p50 {_percentile(values, 0.5):.0f} ms, "
                    f"p95 {_percentile(values, 0.95):.0f} ms, max {max(values):.0f} ms (n={len(values)})"
                )
        violations = simulator.violations()
        self.stdout.write(f"  protocol violations: {len(violations)}")
        for violation in violations:
            self.stdout.write(f"    {violation.kind} {violation.order_id or ''}: {violation.detail}")
        if not require_settled:
            return not violations
        return bool(orders) and all(o.outcome in OK_OUTCOMES for o in orders) and not violations
