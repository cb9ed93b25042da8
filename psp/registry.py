"""The enabled PSP adapters, built once per process from settings.

Every adapter the node has is named in ``settings.PSP_ADAPTERS`` (name -> the dotted path of the module
function that builds it from settings); ``PSP`` says which are enabled. Adding a PSP is its adapter
module (with ``build_adapter``), its settings block and its line in ``PSP_ADAPTERS``. Each network
adapter keeps as many connections to its PSP as the payout lane makes calls at once
(``PAYOUT_LANE_THREADS``).
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from psp.base import PspAdapter


@cache
def adapter(name: str) -> PspAdapter:
    """The adapter called ``name``. Raises KeyError for a name the node has no adapter for."""
    build = import_string(settings.PSP_ADAPTERS[name])
    built: PspAdapter = build()
    return built


def enabled() -> list[PspAdapter]:
    return [adapter(name) for name in settings.PSP]
