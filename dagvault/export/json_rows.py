"""JSON datasets, written and read back one row at a time (memory: one row, any blob size).

DuckDB's JSON writer and reader work on vectors of 2048 rows: with 20 KB signatures (40 KB
as hex) one vector's strings, their JSON text and the write buffer outgrow the export's
256 MB memory limit, and the reader allocates its buffers by the largest object it may
meet. So JSON does not go through DuckDB: each row is read from SQLite, encoded with the
stdlib encoder and written on its own.

Two layouts of the same objects, one object per line in both:

- ``json``: one RFC 8259 document per table, an array (``[``, the objects separated by
  ``,`` line ends, ``]``), so ``json.load``, ``jq`` or ``JSON.parse`` read it whole;
- ``jsonl``: JSON Lines, one object per line, for line-by-line streaming.

Values: integers as exact JSON numbers (64-bit; JavaScript's ``JSON.parse`` rounds those
beyond 2^53), reals in shortest round-trip form, ±inf as the strings ``"Infinity"`` /
``"-Infinity"`` (JSON has no infinity; PostgreSQL's ``to_json`` does the same), text as
UTF-8 (U+0085, U+2028 and U+2029 escaped, so that any line splitter keeps objects whole),
blobs as uppercase hex strings (as in CSV), NULL as ``null``; a column coerced to text (see
arrow_stream) holds its values' SQL text.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from dagvault.export.arrow_stream import Column, select_sql, sql_text

JSON_FORMATS = ("json", "jsonl")

_JSON_ENCODE = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
).encode
# Legal raw in JSON text, but Python's str.splitlines() (and JavaScript before ES2019) break
# lines there: escaped, so that splitting a file into lines never cuts an object.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _encode(record: dict[str, object]) -> str:
    text = _JSON_ENCODE(record)
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return text
    for char, escape in _LINE_BREAKS.items():
        text = text.replace(char, escape)
    return text


def _real(value: float | int | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return None if value is None else float(value)
    return "Infinity" if value > 0 else "-Infinity"


def _blob(value: bytes | None) -> str | None:
    return None if value is None else value.hex().upper()


def _kept(value: object) -> object:
    return value


def _converter(column: Column) -> Callable[[object], object]:
    if column.coerced:
        return sql_text
    if pa.types.is_floating(column.arrow_type):
        return _real  # type: ignore[return-value]
    if pa.types.is_binary(column.arrow_type):
        return _blob  # type: ignore[return-value]
    return _kept  # int, str or None, as SQLite returned them


def write_json_table(
    conn: sqlite3.Connection,
    table: str,
    columns: list[Column],
    order_by: str | None,
    path: Path,
    fmt: str,
) -> int:
    """Write ``table`` to the new file ``path`` as ``fmt`` (json or jsonl), fsynced; return
    the rows written."""
    names = [c.name for c in columns]
    converters = [_converter(c) for c in columns]
    array = fmt == "json"
    rows = 0
    with open(path, "x", encoding="utf-8", newline="\n") as out:
        cursor = conn.execute(select_sql(table, columns, order_by))
        try:
            if array:
                out.write("[")
            for row in cursor:
                record = {n: f(v) for n, f, v in zip(names, converters, row, strict=True)}
                if array:
                    out.write(",\n" if rows else "\n")
                    out.write(_encode(record))
                else:
                    out.write(_encode(record) + "\n")
                rows += 1
            if array:
                out.write("\n]\n" if rows else "]\n")
        finally:
            cursor.close()
        out.flush()
        os.fsync(out.fileno())
    return rows


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_DECODE = json.JSONDecoder(parse_constant=_reject_constant).decode


def count_records(path: Path, fmt: str) -> int:
    """The objects in a file written by ``write_json_table``, each parsed by the stdlib's
    strict decoder (no NaN/Infinity literals), one line in memory at a time.

    Raises ValueError (naming the line) where the file is not that layout: truncated,
    a line that is not one object, a missing or extra comma, anything after the array.
    """
    array = fmt == "json"
    count = 0
    expect_object = True  # jsonl: always; json: after "[" and after a line ending in ","
    closed = not array
    with open(path, encoding="utf-8", newline="\n") as lines:
        for number, line in enumerate(lines, start=1):
            text = line[:-1] if line.endswith("\n") else line
            try:
                if array and number == 1:
                    if text not in ("[", "[]"):
                        raise ValueError("expected '[' (the array's start) on the first line")
                    closed = text == "[]"
                    expect_object = not closed
                    continue
                if array and closed:
                    raise ValueError("content after the array's end")
                if array and text == "]":
                    if expect_object and count:
                        raise ValueError("a ',' before the array's end")
                    closed = True
                    continue
                if not expect_object:
                    raise ValueError("a missing ',' between objects")
                if array and text.endswith(","):
                    text = text[:-1]
                else:
                    expect_object = not array
                if not isinstance(_DECODE(text), dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                raise ValueError(f"{path.name} line {number}: {exc}") from None
            count += 1
    if not closed:
        raise ValueError(f"{path.name}: the array has no end (the file is truncated)")
    return count
