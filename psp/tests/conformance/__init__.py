"""The adapter conformance kit (kit.py), its suite and the PSP fakes."""
