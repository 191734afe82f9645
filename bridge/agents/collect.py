"""``summary`` and ``[[collect_fields]]`` of an agent file: what the post-call step produces.

```toml
summary = true                      # default: true when collect_fields are given, else false

[[collect_fields]]
name = "caller_name"                # a JSON key: letters, digits, '_' (1-64)
description = "The caller's full name"
type = "string"                     # string | number | boolean | enum

[[collect_fields]]
name = "visit_type"
type = "enum"
values = ["checkup", "cleaning"]    # enum only, at least one
```

Errors are :class:`~bridge.errors.ConfigError` starting with the file and the field, like the
rest of the loader (``agents/x.toml: collect_fields[1].values: …``). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypedDict

from bridge.agents.model import COLLECT_TYPES, CollectField
from bridge.errors import ConfigError

__all__ = ["FIELD_NAME", "PostcallKeys", "read_collect_fields", "read_postcall", "read_summary"]

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_FIELD_KEYS = frozenset({"name", "description", "type", "values"})
MAX_FIELDS = 50


class PostcallKeys(TypedDict):
    """The :class:`~bridge.agents.model.Agent` fields these keys set."""

    collect_fields: tuple[CollectField, ...]
    summary: bool


def read_postcall(where: str, table: Mapping[str, Any]) -> PostcallKeys:
    """``collect_fields`` and ``summary`` of the agent file (``where``: the file)."""
    fields = read_collect_fields(where, table)
    return {"collect_fields": fields, "summary": read_summary(where, table, fields)}


def read_collect_fields(where: str, table: Mapping[str, Any]) -> tuple[CollectField, ...]:
    """The agent file's ``collect_fields`` (``where``: the file, for error messages)."""
    entries = table.get("collect_fields")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: collect_fields: must be an array of tables")
    if len(entries) > MAX_FIELDS:
        raise ConfigError(f"{where}: collect_fields: at most {MAX_FIELDS} fields")
    fields: list[CollectField] = []
    for index, entry in enumerate(entries):
        fields.append(_read_field(f"{where}: collect_fields[{index}].", entry))
    names = [field.name for field in fields]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(f"{where}: collect_fields[{index}].name: duplicate name {name!r}")
    return tuple(fields)


def read_summary(where: str, table: Mapping[str, Any], fields: tuple[CollectField, ...]) -> bool:
    """``summary``: whether the post-call step runs; by default only with ``collect_fields``."""
    value = table.get("summary")
    if value is None:
        return bool(fields)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: summary: must be true or false")
    if not value and fields:
        raise ConfigError(f"{where}: summary: collect_fields need summary = true (or no summary)")
    return value


def _read_field(prefix: str, entry: object) -> CollectField:
    if not isinstance(entry, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: must be a table")
    for key in entry:
        if key not in _FIELD_KEYS:
            raise ConfigError(f"{prefix}{key}: unknown key")
    name = entry.get("name")
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise ConfigError(f"{prefix}name: must be 1-64 letters, digits or '_', got {name!r}")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{prefix}description: must be a string")
    kind = entry.get("type", "string")
    if kind not in COLLECT_TYPES:
        raise ConfigError(f"{prefix}type: must be one of {', '.join(COLLECT_TYPES)}")
    values = entry.get("values")
    if kind != "enum":
        if values is not None:
            raise ConfigError(f'{prefix}values: only for type = "enum"')
        return CollectField(name, description.strip(), kind)
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v.strip() for v in values)
    ):
        raise ConfigError(f"{prefix}values: an enum needs an array of non-empty strings")
    if len(set(values)) != len(values):
        raise ConfigError(f"{prefix}values: must not repeat a value")
    return CollectField(name, description.strip(), kind, tuple(values))
