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
from typing import TypedDict

from bridge.agents.fields import Fields, choice
from bridge.agents.model import COLLECT_TYPES, CollectField

__all__ = ["FIELD_NAME", "PostcallKeys", "read_collect_fields", "read_postcall", "read_summary"]

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_FIELD_KEYS = frozenset({"name", "description", "type", "values"})
MAX_FIELDS = 50


class PostcallKeys(TypedDict):
    """The :class:`~bridge.agents.model.Agent` fields these keys set."""

    collect_fields: tuple[CollectField, ...]
    summary: bool


def read_postcall(fields: Fields) -> PostcallKeys:
    """``collect_fields`` and ``summary`` of the agent file."""
    collect = read_collect_fields(fields)
    return {"collect_fields": collect, "summary": read_summary(fields, collect)}


def read_collect_fields(fields: Fields) -> tuple[CollectField, ...]:
    entries = fields.tables("collect_fields")
    if len(entries) > MAX_FIELDS:
        raise fields.error("collect_fields", f"at most {MAX_FIELDS} fields")
    out: list[CollectField] = []
    for index, entry in enumerate(entries):
        field = _read_field(entry)
        if any(field.name == earlier.name for earlier in out):
            raise fields.error(f"collect_fields[{index}].name", f"duplicate name {field.name!r}")
        out.append(field)
    return tuple(out)


def read_summary(fields: Fields, collect: tuple[CollectField, ...]) -> bool:
    """``summary``: whether the post-call step runs; by default only with ``collect_fields``."""
    value = fields.boolean("summary")
    if value is None:
        return bool(collect)
    if not value and collect:
        raise fields.error("summary", "collect_fields need summary = true (or no summary)")
    return value


def _read_field(entry: Fields) -> CollectField:
    entry.reject_unknown(_FIELD_KEYS)
    name = entry.table.get("name")
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise entry.error("name", f"must be 1-64 letters, digits or '_', got {name!r}")
    description = (entry.string("description", empty_ok=True) or "").strip()
    kind = choice(entry, "type", COLLECT_TYPES) or "string"
    if kind != "enum":
        if "values" in entry.table:
            raise entry.error("values", 'only for type = "enum"')
        return CollectField(name, description, kind)
    values = entry.table.get("values")
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v.strip() for v in values)
    ):
        raise entry.error("values", "an enum needs an array of non-empty strings")
    if len(set(values)) != len(values):
        raise entry.error("values", "must not repeat a value")
    return CollectField(name, description, kind, tuple(values))
