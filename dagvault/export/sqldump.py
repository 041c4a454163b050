"""SQL dumps that the stock ``sqlite3 new.db < dump.sql`` loads into identical contents.

Like the sqlite3 shell's ``.dump``: one transaction, tables with their rows, then
indexes, views and triggers (after the data, so triggers do not fire on the
load), ``sqlite_sequence`` and ``user_version``/``application_id``. Values are
written exactly: 64-bit integers, floats in shortest round-trip form (±inf as
±9e999; SQLite has no NaN), text with quotes doubled (text holding NUL or a carriage
return as a cast blob: the shell drops a '\r' that ends an input line), blobs as X'…'.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import BinaryIO

from dagvault.db import quote_identifier
from dagvault.errors import ConfigError

BATCH_ROWS = 2000


def sql_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "NULL"
        if value in (float("inf"), float("-inf")):
            return "9e999" if value > 0 else "-9e999"
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value or "\r" in value:
            data = value.encode("utf-8", "surrogateescape").hex().upper()
            return f"CAST(X'{data}' AS TEXT)"
        return "'" + value.replace("'", "''") + "'"
    return "X'" + bytes(value).hex().upper() + "'"  # type: ignore[arg-type]


def _schema(conn: sqlite3.Connection, kinds: Iterable[str]) -> list[tuple[str, str, str, str]]:
    marks = ",".join("?" for _ in kinds)
    return conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema "
        f"WHERE type IN ({marks}) AND sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        list(kinds),
    ).fetchall()


def write_dump(
    conn: sqlite3.Connection,
    out: BinaryIO,
    tables: list[str],
    *,
    include_schema: bool = True,
    include_data: bool = True,
) -> dict[str, int]:
    """Write the dump of ``tables`` (and, with the schema, their indexes/triggers and all
    views) to ``out``; return the rows written per table."""

    def emit(statement: str) -> None:
        out.write(statement.encode("utf-8", "surrogateescape"))
        out.write(b";\n")

    virtual = [
        name for _, name, _, sql in _schema(conn, ["table"]) if sql.startswith("CREATE VIRTUAL")
    ]
    if virtual:
        raise ConfigError(
            f"SQL export of virtual tables ({', '.join(virtual)}) is not supported",
            "Export the other tables with --tables, or use `sqlite3 DB .dump`.",
        )
    emit("PRAGMA foreign_keys=OFF")
    emit("BEGIN TRANSACTION")
    written: dict[str, int] = {}
    wanted = set(tables)
    # Views may read any table: only a dump of every table can carry them.
    complete = wanted >= {name for _, name, _, _ in _schema(conn, ["table"])}
    for _, name, _, sql in _schema(conn, ["table"]):
        if name not in wanted:
            continue
        if include_schema:
            emit(sql)
        written[name] = 0
        if not include_data:
            continue
        insert = f"INSERT INTO {quote_identifier(name)} VALUES("
        cursor = conn.execute(f"SELECT * FROM {quote_identifier(name)}")
        while rows := cursor.fetchmany(BATCH_ROWS):
            for row in rows:
                emit(insert + ",".join(sql_literal(v) for v in row) + ")")
            written[name] += len(rows)
    if (
        include_data
        and conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'").fetchone()
    ):
        for name, seq in conn.execute("SELECT name, seq FROM sqlite_sequence"):
            if name in wanted:
                emit(f"DELETE FROM sqlite_sequence WHERE name = {sql_literal(name)}")
                emit(f"INSERT INTO sqlite_sequence VALUES({sql_literal(name)}, {sql_literal(seq)})")
    if include_schema:
        for kind in ("index", "view", "trigger"):
            for _, _name, table, sql in _schema(conn, [kind]):
                if table in wanted or (kind == "view" and complete):
                    emit(sql)
        for pragma_name in ("user_version", "application_id"):
            value = conn.execute(f"PRAGMA {pragma_name}").fetchone()[0]
            if value:
                emit(f"PRAGMA {pragma_name}={int(value)}")
    emit("COMMIT")
    return written
