from __future__ import annotations

import os

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    label = "bench"
    verbose_name = "Benchmarks (bench settings only)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if os.environ.get("BENCH_STATS_DIR"):
            from bench import counters

            counters.install(os.environ["BENCH_STATS_DIR"])
