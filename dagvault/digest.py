"""Content digests of a database: proof that two files hold the same schema and rows.

Independent of page layout, so a restored database (re-paged through the backup
API, WAL header bits set) compares equal to its source.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct

from dagvault.db import quote_identifier, table_names


def _encode(value: object) -> bytes:
    # Type-tagged so that 1, 1.0, '1' and b'1' never collide.
    if value is None:
        return b"N"
    if isinstance(value, int):
        return b"I" + str(value).encode() + b";"
    if isinstance(value, float):
        return b"R" + struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"T" + str(len(data)).encode() + b":" + data
    data = bytes(value)  # type: ignore[arg-type]
    return b"B" + str(len(data)).encode() + b":" + data


def _order_by(conn: sqlite3.Connection, table: str) -> str:
    try:
        conn.execute(f"SELECT rowid FROM {quote_identifier(table)} LIMIT 0")
        return "rowid"
    except sqlite3.OperationalError:  # WITHOUT ROWID: the primary key orders it
        columns = conn.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
        return ", ".join(str(i + 1) for i in range(len(columns)))


def database_digest(conn: sqlite3.Connection) -> dict[str, str]:
    """SHA3-256 per table of its rows in key order, plus ``sqlite_schema`` for the schema."""
    digests = {}
    schema = hashlib.sha3_256()
    for row in conn.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema "
        "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name"
    ):
        schema.update(b"".join(_encode(v) for v in row))
    digests["sqlite_schema"] = schema.hexdigest()
    for table in table_names(conn):
        digest = hashlib.sha3_256()
        cursor = conn.execute(
            f"SELECT * FROM {quote_identifier(table)} ORDER BY {_order_by(conn, table)}"
        )
        while rows := cursor.fetchmany(1000):
            for row in rows:
                digest.update(b"".join(_encode(v) for v in row) + b"\n")
        digests[table] = digest.hexdigest()
    return digests
