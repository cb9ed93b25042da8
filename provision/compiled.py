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
from django.db.models.sql import InsertQuery
from django.db.transaction import TransactionManagementError
from django.utils.functional import cached_property

M = TypeVar("M", bound=Model)

_MARKER = -7_654_321_987  # the key value compiled into the query, found again among its parameters


_Converters = list[tuple[int, tuple[list[Any], Any]]]


def _convert(row: Any, converters: _Converters, connection: Any) -> Any:
    """What ``SQLCompiler.apply_converters`` does to a row (with this thread's connection)."""
    if not converters:
        return row
    values = list(row)
    for position, (functions, expression) in converters:
        value = values[position]
        for function in functions:
            value = function(value, expression, connection)
        values[position] = value
    return values


@dataclass(frozen=True)
class _Compiled:
    vendor: str
    sql: str
    params: tuple[Any, ...]
    slot: int  # where the key goes in ``params``
    attnames: list[str]
    converters: _Converters
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
            model.from_db(using, compiled.attnames, _convert(row, compiled.converters, connection))
            for row in rows
        ]

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


# --- inserts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Insert:
    sql: str
    returning_params: tuple[Any, ...]
    converters: _Converters


_inserts: dict[tuple[Any, ...], _Insert | None] = {}


class PreparedInsert(Model):
    """Model mixin: ``save()`` of a new row runs an INSERT whose SQL Django built once (per model, database
    alias and set of columns), instead of building it again for every row.

    Everything else about saving is Django's: ``save_base`` sends the model signals and picks the columns,
    each field's ``pre_save`` (``auto_now_add``, defaults already applied) and ``get_db_prep_save`` give the
    values, the returned primary key goes through the backend's converters. Rows the ORM would insert
    differently are left to it: raw saves (fixtures), expressions as values, fields with their own
    placeholders, and databases that cannot return columns from an INSERT. For a 38-column order on this
    2-core machine: ~0.25 ms of CPU less per INSERT (the compiler walking every column).
    """

    class Meta:
        abstract = True

    def _do_insert(
        self, manager: Any, using: str, fields: list[Field[Any, Any]], returning_fields: Any, raw: bool
    ) -> Any:
        connection = connections[using]
        statement = None if raw else self._prepared_insert(using, connection, fields, returning_fields)
        if statement is None or any(
            hasattr(getattr(self, field.attname, None), "resolve_expression") for field in fields
        ):
            return super()._do_insert(manager, using, fields, returning_fields, raw)  # type: ignore[misc]
        params = [
            field.get_db_prep_save(field.pre_save(self, True), connection=connection) for field in fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, [*params, *statement.returning_params])
            if not returning_fields:
                return []
            row = connection.ops.fetch_returned_insert_columns(cursor, statement.returning_params)
        return [tuple(_convert(row, statement.converters, connection))]

    @classmethod
    def _prepared_insert(
        cls, using: str, connection: Any, fields: list[Field[Any, Any]], returning_fields: Any
    ) -> _Insert | None:
        returning = tuple(returning_fields or ())
        key = (cls, using, connection.vendor, tuple(fields), returning)
        if key in _inserts:
            return _inserts[key]
        statement = None
        if not returning or connection.features.can_return_columns_from_insert:
            statement = _compile_insert(cls, using, connection, fields, list(returning))
        _inserts[key] = statement
        return statement


def _compile_insert(
    model: type[Model], using: str, connection: Any, fields: list[Field[Any, Any]], returning: list[Any]
) -> _Insert | None:
    """The SQL Django's insert compiler writes for one row of ``model`` with these columns, or None when its
    placeholders could depend on the values."""
    if any(getattr(field, "get_placeholder", None) is not None for field in fields):
        return None
    query = InsertQuery(model)
    query.insert_values(fields, [model()], raw=False)  # a blank row: only the SQL's shape is kept
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = returning
    statements = compiler.as_sql()
    if len(statements) != 1:
        return None
    sql, params = statements[0]
    returning_params = tuple(getattr(compiler, "returning_params", ()))
    if len(params) != len(fields) + len(returning_params) or sql.count("%s") != len(params):
        return None
    columns = [field.get_col(model._meta.db_table) for field in returning]
    return _Insert(
        sql=sql,
        returning_params=returning_params,
        converters=list(compiler.get_converters(columns).items()),
    )
