"""Outbound HTTP clients of the orders app."""
