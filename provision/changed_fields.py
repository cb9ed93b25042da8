"""``SavesChangedFields``: ``save()`` of a loaded row writes only the columns that changed.

The order and transfer rows are written several times on every order's path, and each plain ``save()``
builds and sends an UPDATE of all their ~35 columns. This mixin remembers the values a row was loaded
with (``from_db``) and turns a ``save()`` without ``update_fields`` into one with the fields that differ
now, plus ``auto_now`` fields: same result, a fraction of the work. New rows, explicit ``update_fields``
and rows created in Python (not loaded) are saved exactly as Django would. JSON values are compared by
value (a copy is remembered), so changing a list or dict in place is seen; a deferred field counts as
changed once it is set; ``refresh_from_db`` counts what it reads as loaded.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable
from typing import Any, Self

from django.db import models

_MUTABLE = (dict, list)


class SavesChangedFields(models.Model):
    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields: Iterable[str] | None = kwargs.get("update_fields")
        if (
            update_fields is None
            and not args
            and not self._state.adding
            and not kwargs.get("force_insert")
            and getattr(self, "_loaded_values", None) is not None
        ):
            auto_now = [f.name for f in self._meta.concrete_fields if getattr(f, "auto_now", False)]
            kwargs["update_fields"] = sorted({*self.changed_fields(), *auto_now})
        super().save(*args, **kwargs)
        self._remember()

    @classmethod
    def from_db(cls, db: str | None, field_names: Collection[str], values: Collection[Any]) -> Self:
        instance = super().from_db(db, field_names, values)
        instance._remember()
        return instance

    def refresh_from_db(
        self, using: str | None = None, fields: Iterable[str] | None = None, from_queryset: Any = None
    ) -> None:
        names = list(fields) if fields is not None else None
        super().refresh_from_db(using=using, fields=names, from_queryset=from_queryset)
        loaded: dict[str, Any] | None = getattr(self, "_loaded_values", None)
        if loaded is None:
            return
        refreshed = (
            [self._meta.get_field(name) for name in names]
            if names is not None
            else [field for field in self._meta.concrete_fields if field.attname in self.__dict__]
        )
        for field in refreshed:  # what was just read is what the database holds: not a change
            value = self.__dict__.get(field.attname)  # type: ignore[union-attr]
            loaded[field.attname] = copy.deepcopy(value) if isinstance(value, _MUTABLE) else value  # type: ignore[union-attr]

    def _remember(self) -> None:
        loaded = self.__dict__
        self._loaded_values = {
            field.attname: copy.deepcopy(loaded[field.attname])
            if isinstance(loaded.get(field.attname), _MUTABLE)
            else loaded.get(field.attname)
            for field in self._meta.concrete_fields
            if field.attname in loaded
        }

    def changed_fields(self) -> list[str]:
        """The concrete fields whose value differs from the one loaded (all of them if not loaded)."""
        loaded: dict[str, Any] | None = getattr(self, "_loaded_values", None)
        fields = [field for field in self._meta.concrete_fields if not field.primary_key]
        if loaded is None:
            return [field.name for field in fields]
        current = self.__dict__
        return [
            field.name
            for field in fields
            if field.attname in current
            and (field.attname not in loaded or current[field.attname] != loaded[field.attname])
        ]
