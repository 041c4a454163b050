"""JSON exports (issue #14): ``json`` is one array per table that any JSON parser reads whole,
``jsonl`` is JSON Lines; both are written row by row in bounded memory, whatever the blob size.

Ledgers are the odd ones of tests/_helpers.py (20 KB signatures, WITHOUT ROWID, unicode,
NULLs, 64-bit integers). Each file is read back with ``json`` (whole document / line by line),
DuckDB ``read_json``, pandas ``read_json`` and polars.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_export_json.py."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from _helpers import make_odd_ledger
from _shared.export_json import JSON_FORMATS

from dagvault.export import export_database
from dagvault.export.json_rows import count_records
from dagvault.quality import check_export, count_exported

SUFFIX = {"json": ".json", "jsonl": ".jsonl"}


def sqlite_rows(db: Path, table: str, key: str) -> dict[Any, dict[str, Any]]:
    """The table as JSON would hold it: blobs as uppercase hex."""
    with closing(sqlite3.connect(db)) as conn:
        cursor = conn.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        rows = [
            {
                n: v.hex().upper() if isinstance(v, bytes) else v
                for n, v in zip(names, row, strict=True)
            }
            for row in cursor
        ]
    return {row[key]: row for row in rows}


def stdlib_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        if fmt == "json":
            return json.load(fh)  # the whole file is one JSON document
        return [json.loads(line) for line in fh]


def duckdb_read(path: Path, fmt: str) -> str:
    layout = "array" if fmt == "json" else "newline_delimited"
    return f"read_json('{path}', format = '{layout}')"


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_json_export_of_the_odd_ledger_reads_back_exactly_in_every_reader(
    tmp_path: Path, odd_ledger: Path, fmt: str
) -> None:
    with closing(sqlite3.connect(odd_ledger)) as conn:
        # Characters that str.splitlines() (and old JavaScript) take for line breaks.
        conn.execute("UPDATE tx_log SET memo = 'a\u2028b\u2029c\x85d' WHERE tx_id = 3")
        conn.commit()
    out = tmp_path / "export"
    result = export_database(fmt, database=odd_ledger, out=out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == fmt
    assert ("JSON array" in manifest["encoding"]) == (fmt == "json")
    tables = {"tx_log": "tx_id", "validators": "pubkey", "tx_edges": None}
    assert set(manifest["tables"]) == set(tables)
    assert {t: e["file"] for t, e in manifest["tables"].items()} == {
        t: t + SUFFIX[fmt] for t in tables
    }

    for table, key in tables.items():
        path = out / manifest["tables"][table]["file"]
        records = stdlib_records(path, fmt)
        assert len(records) == result.row_counts[table] == manifest["tables"][table]["rows"]
        if key:  # every value as SQLite holds it: 64-bit ints, NULLs, unicode, blobs as hex
            assert {r[key]: r for r in records} == sqlite_rows(odd_ledger, table, key)
    tx_log = out / manifest["tables"]["tx_log"]["file"]
    expected = sqlite_rows(odd_ledger, "tx_log", "tx_id")
    big = {k: r["value"] for k, r in expected.items() if r["value"] > 2**53}
    assert big  # the odd ledger's 2^62 + n amounts, beyond a double's exact range
    with open(tx_log, encoding="utf-8") as fh:
        text = fh.read()
    assert "\u2028" not in text and "\\u2028" in text
    assert len(text.splitlines()) == len(expected) + (2 if fmt == "json" else 0)

    with closing(duckdb.connect()) as con:
        count, total = con.execute(
            f"SELECT count(*), sum(value::HUGEINT) FROM {duckdb_read(tx_log, fmt)}"
        ).fetchone()
        duck_big = dict(
            con.execute(
                f"SELECT tx_id, value FROM {duckdb_read(tx_log, fmt)} WHERE value > 2::BIGINT ** 53"
            ).fetchall()
        )
        memo = con.execute(
            f"SELECT memo FROM {duckdb_read(tx_log, fmt)} WHERE tx_id = 3"
        ).fetchone()
    assert count == len(expected) and total == sum(r["value"] for r in expected.values())
    assert duck_big == big
    assert memo == ("a\u2028b\u2029c\x85d",)

    frame = pd.read_json(tx_log, lines=fmt == "jsonl", dtype_backend="pyarrow")
    assert len(frame) == len(expected)
    assert dict(zip(frame["tx_id"], frame["value"], strict=True)) == {
        k: r["value"] for k, r in expected.items()
    }
    assert frame["memo"].isna().sum() == sum(r["memo"] is None for r in expected.values())

    pl = pytest.importorskip("polars", reason="polars is not installed (optional reader)")
    polars_frame = (pl.read_json if fmt == "json" else pl.read_ndjson)(tx_log)
    assert polars_frame.height == len(expected)
    assert dict(polars_frame.select("tx_id", "value").iter_rows()) == {
        k: r["value"] for k, r in expected.items()
    }


def test_an_empty_table_is_an_empty_array_or_an_empty_file(tmp_path: Path) -> None:
    db = make_odd_ledger(tmp_path / "odd.db", 3)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM tx_edges")
        conn.commit()
    for fmt in JSON_FORMATS:
        out = tmp_path / fmt
        export_database(fmt, database=db, out=out, tables=["tx_edges"])
        path = out / f"tx_edges{SUFFIX[fmt]}"
        assert stdlib_records(path, fmt) == []
        assert count_exported(out) == {"tx_edges": 0}
        with closing(duckdb.connect()) as con:
            assert con.execute(f"SELECT count(*) FROM read_json_objects('{path}')").fetchone() == (
                0,
            )


def test_blobs_past_duckdbs_json_object_limit_export_and_pass_the_gate(tmp_path: Path) -> None:
    # 9 MB blobs are 18 MB of hex: over DuckDB's 16 MB maximum_object_size for read_json.
    db = make_odd_ledger(tmp_path / "odd.db", 3, blob_size=9_000_000)
    for fmt in JSON_FORMATS:
        result = export_database(fmt, database=db, out=tmp_path / fmt, tables=["tx_log"])
        out = Path(result.export_path)
        assert count_exported(out) == {"tx_log": 3}  # what the export gate counts
        records = stdlib_records(out / f"tx_log{SUFFIX[fmt]}", fmt)
        assert [len(r["signature"]) for r in records] == [18_000_000] * 3


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_the_export_gate_fails_a_truncated_or_shortened_json_export(
    tmp_path: Path, odd_ledger: Path, fmt: str
) -> None:
    result = export_database(fmt, database=odd_ledger, out=tmp_path / "export")
    out = Path(result.export_path)
    path = out / f"tx_log{SUFFIX[fmt]}"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if fmt == "json":  # the array's end cut off: no longer a JSON document
        path.write_text("".join(lines[:-1]), encoding="utf-8")
        assert count_exported(out)["tx_log"] is None
        failed = {"every_table_exported", "export_rows_equal_snapshot"}
    else:  # one line less: still JSON Lines, one row short
        path.write_text("".join(lines[:-1]), encoding="utf-8")
        assert count_exported(out)["tx_log"] == result.row_counts["tx_log"] - 1
        failed = {"export_rows_equal_snapshot"}
    report = check_export(out, result.row_counts, reports_dir=None)
    assert not report.passed
    assert {o.name for o in report.expectations if not o.success} == failed


@pytest.mark.parametrize(
    ("fmt", "text", "problem"),
    [
        ("json", '[\n{"a":1},\n{"a":2}\n]\n', None),
        ("json", "[]\n", None),
        ("jsonl", '{"a":1}\n{"a":2}\n', None),
        ("jsonl", "", None),
        ("json", '[\n{"a":1},\n{"a":2}\n', "truncated"),
        ("json", '[\n{"a":1}\n{"a":2}\n]\n', "missing ','"),
        ("json", '[\n{"a":1},\n]\n', "',' before"),
        ("json", '[\n{"a":1}\n]\n{"a":2}\n', "after the array"),
        ("json", '{"a":1}\n', "'['"),
        ("json", "[\n[1]\n]\n", "not a JSON object"),
        ("jsonl", '{"a":1}\n\n', "line 2"),
        ("jsonl", '{"a":Infinity}\n', "Infinity is not JSON"),
        ("jsonl", '{"a":NaN}\n', "NaN is not JSON"),
        ("jsonl", '{"a":1}\n{"a":\n', "line 2"),
    ],
)
def test_count_records_accepts_only_the_written_layout(
    tmp_path: Path, fmt: str, text: str, problem: str | None
) -> None:
    path = tmp_path / f"t{SUFFIX[fmt]}"
    path.write_text(text, encoding="utf-8")
    if problem is None:
        assert count_records(path, fmt) == text.count('{"a"')
    else:
        with pytest.raises(ValueError, match=re.escape(problem)):
            count_records(path, fmt)
