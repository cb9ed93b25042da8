"""One real-HTTP fake per adapter (``kit.PspFake`` subclasses). A new PSP adds its fake to FAKES."""

from __future__ import annotations

from psp.tests.conformance.fakes.airtel import AirtelFake
from psp.tests.conformance.fakes.lenco import LencoMwkMomoFake, LencoNgnFake, LencoZmwBankFake
from psp.tests.conformance.fakes.mpesa import MpesaFake
from psp.tests.conformance.fakes.mtn_momo import MtnMomoFake
from psp.tests.conformance.fakes.paystack import PaystackFake
from psp.tests.conformance.fakes.sandbox import SandboxFake
from psp.tests.conformance.kit import PspFake

FAKES: list[type[PspFake]] = [
    SandboxFake,
    LencoNgnFake,
    LencoMwkMomoFake,
    LencoZmwBankFake,
    MtnMomoFake,
    PaystackFake,
    AirtelFake,
    MpesaFake,
]
