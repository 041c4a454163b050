"""Dataset files: CSV and Parquet written by DuckDB from Arrow record batches, JSON and
JSON Lines row by row (json_rows: DuckDB's JSON needs memory in proportion to the blobs).

DuckDB's own ``sqlite`` extension is downloaded at run time, which air-gapped
nodes cannot do; feeding it Arrow batches read through the stdlib ``sqlite3``
needs nothing beyond the installed wheels.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dagvault.db import quote_identifier
from dagvault.errors import ExportMismatch, StorageError
from dagvault.export.arrow_stream import Column, record_batches, table_columns
from dagvault.export.json_rows import JSON_FORMATS, count_records, write_json_table
from dagvault.export.literal import duckdb_name

SUFFIXES = {"parquet": ".parquet", "csv": ".csv", "json": ".json", "jsonl": ".jsonl"}

# Bounded so that an export's peak memory does not depend on the database size.
DUCKDB_MEMORY_LIMIT = "256MB"
# A Parquet row group is buffered whole before it is written: 16384 rows of a narrow table,
# but capped in bytes so that the ~4 KB rows of a ledger (signature + key) make ~16 MB
# groups, not 64 MB ones (less memory, and faster: the buffer stays in cache).
ROW_GROUP_ROWS = 16384
ROW_GROUP_BYTES = "16MB"
# Level 1: the bulk of a ledger (signatures, keys, hashes) is incompressible, so higher
# levels cost time and save nothing; pyarrow/pandas use level 1 by default too.
ZSTD_LEVEL = 1


@dataclass(frozen=True)
class WrittenTable:
    name: str
    file: Path
    rows: int
    columns: list[Column]
    order_by: str | None

    def manifest(self, checksum: str) -> dict[str, Any]:
        """The manifest entry; ``checksum`` is the SHA3-256 of ``file``."""
        return {
            "file": self.file.name,
            "rows": self.rows,
            "bytes": self.file.stat().st_size,
            "sha3_256": checksum,
            "ordered_by": self.order_by,
            "columns": [
                {
                    "name": c.name,
                    "sqlite_declared_type": c.declared_type,
                    "type": str(c.arrow_type),
                    "storage_classes": list(c.storage_classes),
                    "coerced_to_text": c.coerced,
                }
                for c in self.columns
            ],
        }


def _copy_options(fmt: str) -> str:
    if fmt == "parquet":
        return (
            f"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL}, "
            f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}, ROW_GROUP_SIZE_BYTES '{ROW_GROUP_BYTES}'"
        )
    return "FORMAT csv, HEADER true"


def _projection(columns: list[Column], fmt: str) -> str:
    parts = []
    for column in columns:
        name = quote_identifier(column.name)
        if fmt == "csv" and pa.types.is_binary(column.arrow_type):
            parts.append(f"hex({name}) AS {name}")  # CSV carries blobs as hex
        else:
            parts.append(name)
    return ", ".join(parts)


def _read_back_count(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> int:
    reader = {
        "parquet": "read_parquet(?)",
        "csv": "read_csv(?, header = true, all_varchar = true, delim = ',', quote = '\"', "
        "escape = '\"')",
    }[fmt]
    with duckdb_name(path) as name:
        rows = con.execute(f"SELECT count(*) FROM {reader}", [name]).fetchall()
    return int(rows[0][0])


def write_table(
    conn: sqlite3.Connection,
    duck: duckdb.DuckDBPyConnection,
    table: str,
    directory: Path,
    fmt: str,
    order_by: str | None,
) -> tuple[WrittenTable, int, int]:
    """Write one table; return it with the rows streamed and the rows read back."""
    columns = table_columns(conn, table)
    if order_by not in {c.name for c in columns}:
        order_by = None
    path = directory / f"{file_stem(table)}{SUFFIXES[fmt]}"
    if fmt in JSON_FORMATS:
        return _write_json(conn, table, columns, order_by, path, fmt)
    streamed = [0]
    with record_batches(conn, table, columns, order_by, streamed) as reader:
        duck.register("source_batches", reader)
        try:
            duck.execute(
                f"COPY (SELECT {_projection(columns, fmt)} FROM source_batches) "
                f"TO '{_sql_string(path)}' ({_copy_options(fmt)})"
            ).fetchall()
        except duckdb.IOException as exc:
            raise _os_error(exc, path) from exc
        except duckdb.OutOfMemoryException as exc:  # a bug of ours: batches are bounded
            raise StorageError(
                f"DuckDB ran out of its {DUCKDB_MEMORY_LIMIT} memory writing {path.name}: {exc}",
                "Nothing was published. Report this with the table's schema; meanwhile "
                "export this table as --format jsonl or sql, which do not use DuckDB.",
            ) from None
        finally:
            duck.unregister("source_batches")
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    return (
        WrittenTable(table, path, streamed[0], columns, order_by),
        streamed[0],
        _read_back_count(duck, path, fmt),
    )


def _write_json(
    conn: sqlite3.Connection,
    table: str,
    columns: list[Column],
    order_by: str | None,
    path: Path,
    fmt: str,
) -> tuple[WrittenTable, int, int]:
    rows = write_json_table(conn, table, columns, order_by, path, fmt)
    try:
        read_back = count_records(path, fmt)
    except ValueError as exc:
        raise ExportMismatch(
            f"The exported {path.name} does not read back as {fmt}; nothing was published: {exc}",
            "Report this as a bug with the database's schema; retry the export meanwhile.",
        ) from None
    return WrittenTable(table, path, rows, columns, order_by), rows, read_back


_DUCKDB_ERRNO = re.compile(r'"errno"\s*:\s*"(\d+)"')
_DUCKDB_REASONS = {
    "No space left": errno.ENOSPC,
    "File too large": errno.EFBIG,
    "quota exceeded": errno.EDQUOT,
    "Permission denied": errno.EACCES,
    "Read-only file system": errno.EROFS,
}


def _os_error(exc: duckdb.IOException, path: Path) -> OSError:
    """DuckDB's I/O error as the OSError it stands for, so the caller reports a StorageError
    (DiskFull for ENOSPC/EFBIG/EDQUOT) like for any other write."""
    text = str(exc)
    match = _DUCKDB_ERRNO.search(text)
    code = int(match.group(1)) if match else None
    if code is None:
        code = next((c for reason, c in _DUCKDB_REASONS.items() if reason in text), errno.EIO)
    return OSError(code, os.strerror(code), str(path))


def file_stem(table: str) -> str:
    """The table's name where it is a safe file name; otherwise a stable hashed stand-in."""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", table):
        return table
    return "table_" + hashlib.sha3_256(table.encode()).hexdigest()[:16]


def _sql_string(path: Path) -> str:
    return str(path).replace("'", "''")


def duckdb_connection(spill_dir: Path) -> duckdb.DuckDBPyConnection:
    """``spill_dir``: where DuckDB may spill past its memory limit (its default is ./.tmp in
    whatever directory the process runs in); the export's own temp directory."""
    con = duckdb.connect(
        config={
            "memory_limit": DUCKDB_MEMORY_LIMIT,
            "threads": 1,
            "temp_directory": str(spill_dir),
        }
    )
    con.execute("SET preserve_insertion_order = true").fetchall()
    # DuckDB draws a progress bar on stdout (terminal or not) for queries over 2 s: it would
    # corrupt `dagvault export --json` output.
    con.execute("SET enable_progress_bar = false").fetchall()
    return con
