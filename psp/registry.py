"""The enabled PSP adapters, built once per process from settings, in routing order. Each keeps as many
connections to its PSP as the payout lane makes calls at once (``PAYOUT_LANE_THREADS``)."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from psp.base import PspAdapter


@cache
def adapter(name: str) -> PspAdapter:
    if name == "sandbox":
        from psp.sandbox import SandboxAdapter

        return SandboxAdapter()
    if name == "lenco":
        from psp.clients.lenco import LencoAdapter, LencoConfig

        return LencoAdapter(
            LencoConfig(
                base_url_v1=settings.LENCO_BASE_URL,
                base_url_v2=settings.LENCO_V2_BASE_URL,
                api_key=settings.LENCO_API_KEY,
                account_id=settings.LENCO_ACCOUNT_ID,
                timeout=settings.LENCO_TIMEOUT_SECONDS,
                connections=settings.PAYOUT_LANE_THREADS,
            )
        )
    if name == "mtn_momo":
        from psp.clients.mtn_momo import MtnMomoAdapter, MtnMomoConfig

        return MtnMomoAdapter(
            MtnMomoConfig(
                base_url=settings.MTN_MOMO_BASE_URL,
                subscription_key=settings.MTN_MOMO_SUBSCRIPTION_KEY,
                api_user=settings.MTN_MOMO_API_USER,
                api_key=settings.MTN_MOMO_API_KEY,
                target_environment=settings.MTN_MOMO_TARGET_ENVIRONMENT,
                currency=settings.MTN_MOMO_CURRENCY,
                callback_host=settings.MTN_MOMO_CALLBACK_HOST,
                timeout=settings.MTN_MOMO_TIMEOUT_SECONDS,
                connections=settings.PAYOUT_LANE_THREADS,
            )
        )
    raise KeyError(name)


def enabled() -> list[PspAdapter]:
    return [adapter(name) for name in settings.PSP]
