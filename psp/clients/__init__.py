"""Outbound HTTP clients, one module per payment service provider."""
