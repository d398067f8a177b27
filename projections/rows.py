"""How the read models' statements are written: templates over the schema name
(`qualified`), and folded rows written back with one `unnest` upsert per table and batch.

Read models that update rows (incidents, alerts, correlation) load the rows a
batch touches, fold its events in memory, and write each row once, so a batch
costs a few round trips whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from projections.logged import to_json

Columns = tuple[tuple[str, str], ...]
"""(column name, PostgreSQL type) in table order."""


def upsert_statement(table: str, columns: Columns, key: tuple[str, ...]) -> str:
    """INSERT … SELECT FROM unnest(one array per column) … ON CONFLICT (key) DO UPDATE
    every other column; `{s}` stays as the schema placeholder."""
    names = [n for n, _ in columns]
    arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(columns, 1))
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in key)
    return (f"INSERT INTO {{s}}.{table} ({', '.join(names)})\n"
            f"SELECT * FROM unnest({arrays})\n"
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


def column_arrays(rows: Iterable[dict[str, Any]], columns: Columns) -> list[list[Any]]:
    """The rows as one list per column, jsonb values encoded, ready for `upsert_statement`."""
    arrays: list[list[Any]] = [[] for _ in columns]
    for row in rows:
        for array, (name, kind) in zip(arrays, columns):
            value = row[name]
            array.append(to_json(value) if kind == "jsonb" and value is not None else value)
    return arrays


def quote_ident(name: str) -> str:
    """`name` as a PostgreSQL identifier, safe to splice into SQL."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, sql: str, **extra: Any) -> str:
    """`sql` with `{s}` replaced by the quoted schema name (statements are templates)."""
    return sql.format(s=quote_ident(schema), **extra)
