"""django-fsm-log's storage backend for this node: the same ``StateLog`` row per transition, one INSERT.

django-fsm-log's ``SimpleBackend`` writes each transition with ``StateLog.objects.create(content_object=
instance, ...)``: a model instance, the generic foreign key's descriptor and the ORM's insert compiler for
an eight-column row, five times along every order's path. ``InsertBackend`` (``DJANGO_FSM_LOG_STORAGE_
METHOD``) writes the row the ORM would write — same columns, values prepared by the same fields, on the
database the router picks for writing ``StateLog``, inside the transition's transaction — with an INSERT
whose SQL is built once per database. It honours ``DJANGO_FSM_LOG_IGNORED_MODELS`` and the ``by`` and
``description`` the ``fsm_log_by``/``fsm_log_description`` decorators attach. No model signals are sent
for the row (nothing in the node listens to them).
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connections, router
from django.utils import timezone
from django_fsm_log.backends import BaseBackend, SimpleBackend
from django_fsm_log.conf import settings as fsm_log_settings
from django_fsm_log.helpers import FSMLogDescriptor

_COLUMNS = (
    "timestamp",
    "by",
    "source_state",
    "state",
    "transition",
    "content_type",
    "object_id",
    "description",
)
_statements: dict[str, str] = {}


def _attached(instance: Any, attribute: str) -> Any:
    try:
        return FSMLogDescriptor(instance, attribute).get()
    except AttributeError:
        return None


def _insert_sql(using: str) -> str:
    from django_fsm_log.models import StateLog

    connection = connections[using]
    key = f"{using}:{connection.vendor}"
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(StateLog._meta.get_field(name).column) for name in _COLUMNS)
        placeholders = ", ".join(["%s"] * len(_COLUMNS))
        sql = f"INSERT INTO {quote(StateLog._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608 - quoted identifiers from the model
        _statements[key] = sql
    return sql


def write_state_log(
    *, instance: Any, source: Any, target: Any, transition: str, by: Any, description: Any
) -> None:
    """Insert the ``StateLog`` row of one transition of ``instance``."""
    from django_fsm_log.models import StateLog

    using = router.db_for_write(StateLog, instance=instance)
    connection = connections[using]
    content_type = ContentType.objects.db_manager(using).get_for_model(instance, for_concrete_model=True)
    values = {
        "timestamp": timezone.now(),
        "by": getattr(by, "pk", None),
        "source_state": source,
        "state": target,
        "transition": transition,
        "content_type": content_type.pk,
        "object_id": instance.pk,
        "description": description,
    }
    params = [StateLog._meta.get_field(name).get_db_prep_save(values[name], connection) for name in _COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(using), params)


class InsertBackend(SimpleBackend):
    @staticmethod
    def post_transition_callback(
        sender: Any, instance: Any, name: str, source: Any, target: Any, **kwargs: Any
    ) -> None:
        if BaseBackend._get_model_qualified_name__(sender) in fsm_log_settings.DJANGO_FSM_LOG_IGNORED_MODELS:
            return
        if target is None:
            return
        write_state_log(
            instance=instance,
            source=source,
            target=target,
            transition=name,
            by=_attached(instance, "by"),
            description=_attached(instance, "description"),
        )
