"""Wiring that must run once in every process (web and worker) after the apps are loaded.

A separate app config so the cross-cutting hooks live in one visible place:
* django-q2 task signals that carry the correlation id into tasks (``provision.task_context``);
* the log redaction's cache of configured secrets, cleared when a test changes one;
* the OpenAPI extensions that describe the aggregator-facing views (``provision.openapi``);
* no ``*_created`` series next to every counter and histogram in /metrics (half the series, and
  Prometheus does not need them).
"""

from __future__ import annotations

from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "provision.hooks"
    label = "provision_hooks"
    verbose_name = "Provision node hooks"

    def ready(self) -> None:
        import prometheus_client
        from django.core.signals import setting_changed

        from provision import logging, openapi, task_context

        task_context.connect()
        setting_changed.connect(logging.forget_secrets, dispatch_uid="provision.logging.forget_secrets")
        openapi.register()
        prometheus_client.disable_created_metrics()
