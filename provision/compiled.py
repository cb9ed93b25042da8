"""Row reads the worker repeats for every order, with their SQL built once per process.

Building the SQL of ``Order.objects.select_for_update().get(pk=...)`` costs Django ~0.4 ms of CPU (the
filter, then the compiler walking the order's ~40 columns); sending it and reading the row, ~0.05 ms.
The pipeline reads an order, its transfer and outbox rows by key about a dozen times per order, so
``Lookup`` compiles each such query once (per database alias) with the ORM itself and afterwards only
binds the key: the same SQL, the same row-to-model conversion (the backend's converters, then
``Model.from_db``), the same errors (``DoesNotExist``, and ``TransactionManagementError`` for a locking
read outside a transaction), and the connection's execute wrappers and query log see it as usual.

Only plain querysets (no ``select_related``, annotations, ``values()`` or slicing) are accepted, filtered
on one concrete field whose value is bound at each call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, QuerySet
from django.db.transaction import TransactionManagementError
from django.utils.functional import cached_property

M = TypeVar("M", bound=Model)

_MARKER = -7_654_321_987  # the key value compiled into the query, found again among its parameters


@dataclass(frozen=True)
class _Compiled:
    vendor: str
    sql: str
    params: tuple[Any, ...]
    slot: int  # where the key goes in ``params``
    attnames: list[str]
    converters: list[tuple[int, tuple[list[Any], Any]]]
    locks: bool


class Lookup(Generic[M]):
    """``queryset().filter(<field>=value)`` read as model instances, compiled once per database alias.

    ``get(value)`` behaves like ``QuerySet.get`` (one row or ``DoesNotExist``), ``first(value)`` like
    ``QuerySet.first`` and ``all(value)`` like ``list()`` of the queryset."""

    def __init__(self, queryset: Callable[[], QuerySet[M]], *, field: str = "pk") -> None:
        self._queryset = queryset
        self._field = field
        self._compiled: dict[str, _Compiled] = {}
        self._model: type[M] | None = None

    @property
    def model(self) -> type[M]:
        if self._model is None:
            self._model = self._queryset().model
        return self._model

    def get(self, value: Any, *, using: str = DEFAULT_DB_ALIAS) -> M:
        rows = self._rows(value, using, limit=2)
        model: Any = self.model  # every concrete model has these two exception classes
        if not rows:
            raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
        if len(rows) > 1:
            raise model.MultipleObjectsReturned(f"get() returned more than one {model._meta.object_name}.")
        return rows[0]

    def first(self, value: Any, *, using: str = DEFAULT_DB_ALIAS) -> M | None:
        """Like ``QuerySet.first``: the first row in the queryset's order (by pk when it has none)."""
        rows = self._rows(value, using, limit=1)
        return rows[0] if rows else None

    def all(self, value: Any, *, using: str = DEFAULT_DB_ALIAS) -> list[M]:
        return self._rows(value, using, limit=None)

    def _rows(self, value: Any, using: str, *, limit: int | None) -> list[M]:
        connection = connections[using]
        compiled = self._compile(using, limit)
        if compiled.locks and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = list(compiled.params)
        params[compiled.slot] = self._prepare(value, connection)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        model = self.model
        return [
            model.from_db(using, compiled.attnames, self._convert(row, compiled, connection)) for row in rows
        ]

    @staticmethod
    def _convert(row: Any, compiled: _Compiled, connection: Any) -> Any:
        """What ``SQLCompiler.apply_converters`` does to a row (with this thread's connection)."""
        if not compiled.converters:
            return row
        values = list(row)
        for position, (converters, expression) in compiled.converters:
            value = values[position]
            for converter in converters:
                value = converter(value, expression, connection)
            values[position] = value
        return values

    def _prepare(self, value: Any, connection: Any) -> Any:
        field = self._target
        return field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True)

    @cached_property
    def _target(self) -> Field[Any, Any]:
        meta = self.model._meta
        field = meta.pk if self._field == "pk" else meta.get_field(self._field)
        if not isinstance(field, Field) or not field.concrete:
            raise ValueError(f"Lookup needs a concrete field: {self._field}")
        return field

    def _compile(self, using: str, limit: int | None) -> _Compiled:
        key = f"{using}:{limit}"
        connection = connections[using]
        compiled = self._compiled.get(key)
        if compiled is not None and compiled.vendor == connection.vendor:
            return compiled
        plain = self._queryset()
        if (
            getattr(plain, "_fields", None) is not None  # values() / values_list()
            or plain.query.select_related
            or plain.query.annotations
            or plain.query.is_sliced
        ):
            raise ValueError(
                "Lookup takes plain model querysets (no values, select_related, annotations, slices)"
            )
        queryset = plain.filter(**{self._field: _MARKER})
        if limit == 1 and not queryset.ordered:
            queryset = queryset.order_by("pk")  # as QuerySet.first does
        query = queryset.query
        if limit is not None and (
            not query.select_for_update or connection.features.supports_select_for_update_with_limit
        ):
            query.set_limits(high=limit)  # as QuerySet.get and first do
        compiler = query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        marker = self._prepare(_MARKER, connection)
        slots = [i for i, param in enumerate(params) if param == marker]
        if len(slots) != 1:
            raise ValueError(f"Lookup could not find the bound key in {sql!r}")
        fields = [column[0] for column in compiler.select]
        compiled = _Compiled(
            vendor=connection.vendor,
            sql=sql,
            params=tuple(params),
            slot=slots[0],
            attnames=[f.target.attname for f in fields],
            converters=list(compiler.get_converters(fields).items()),
            locks=bool(query.select_for_update) and connection.features.has_select_for_update,
        )
        self._compiled[key] = compiled
        return compiled
