"""Typed access to the tables of an agent file, with errors that say where.

Every problem is a :class:`~bridge.errors.ConfigError` starting ``<file>: <field>:``; unknown
keys are errors (with a "did you mean" hint). Pure: no I/O.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.agents.template import check
from bridge.errors import ConfigError

__all__ = ["Fields", "choice", "strings", "type_name"]


class Fields:
    """Typed access to one TOML table; reports errors as ``<file>: <field>: <problem>``."""

    def __init__(self, path: Path, table: Mapping[str, Any], prefix: str = "") -> None:
        self.path = path
        self.table = table
        self.prefix = prefix

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {self.prefix}{key}: {problem}")

    def reject_unknown(self, known: frozenset[str]) -> None:
        for key in self.table:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.error(key, f"unknown key{hint}")

    def string(self, key: str, *, empty_ok: bool = False) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {type_name(value)}")
        if not empty_ok and not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def required_string(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise self.error(key, "is required")
        return value

    def number(self, key: str, *, allow_zero: bool = False, high: float = math.inf) -> float | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, got {type_name(value)}")
        number = float(value)
        low_ok = number >= 0 if allow_zero else number > 0
        if not (math.isfinite(number) and low_ok and number <= high):
            low = "at least 0" if allow_zero else "greater than 0"
            limit = f" and at most {high:g}" if high < math.inf else ""
            raise self.error(key, f"must be {low}{limit}, got {value!r}")
        return number

    def boolean(self, key: str) -> bool | None:
        value = self.table.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {type_name(value)}")
        return value

    def table_of(self, key: str) -> Mapping[str, Any] | None:
        value = self.table.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {type_name(value)}")
        return value

    def tables(self, key: str, hint: str = "") -> list[Fields]:
        """The entries of an array of tables (``[[key]]``), each addressed as ``key[i].``;
        none when absent."""
        entries = self.table.get(key)
        if entries is None:
            return []
        if not isinstance(entries, list):
            raise self.error(key, f"must be an array of tables{hint}")
        out: list[Fields] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise self.error(f"{key}[{index}]", f"must be a table, got {type_name(entry)}")
            out.append(Fields(self.path, entry, f"{self.prefix}{key}[{index}]."))
        return out

    def template(self, key: str, text: str, where: str = "") -> None:
        """Reject a stray ``{{`` in a template-bearing field."""
        check(text, source=f"{self.path}: {self.prefix}{key}{where}")


def choice(fields: Fields, key: str, choices: tuple[str, ...]) -> str | None:
    value = fields.string(key)
    if value is not None and value not in choices:
        raise fields.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def strings(fields: Fields, key: str) -> list[str]:
    value = fields.table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fields.error(key, "must be an array of non-empty strings")
    return list(value)


def type_name(value: object) -> str:
    names = {str: "string", bool: "boolean", int: "integer", float: "float", dict: "table"}
    return names.get(type(value), "array" if isinstance(value, list) else type(value).__name__)
