"""export_database on real SQLite files, read back by independent tools.

SQL dumps are loaded by the stock ``sqlite3`` shell; JSON/CSV/Parquet datasets are read
back with DuckDB, pandas, pyarrow (and polars where installed). A live database is
exported while a real writer process commits into it; failures (existing target, unknown
table, corrupt backup, a full disk via RLIMIT_FSIZE in a child process) must leave
nothing behind.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_export.py."""

from __future__ import annotations

import csv
import itertools
import json
import math
import sqlite3
import struct
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _shared.export import (
    SUFFIX,
    check_dataset_manifest,
    make_edge_database,
    query,
    read_manifest,
    row_counts,
    sha3,
)

from dagvault.backup import create_backup
from dagvault.errors import ConfigError, VerificationError
from dagvault.export import export_database

DATASET_FORMATS = ("json", "jsonl", "csv", "parquet")


def float_bits(value: float | None) -> bytes | None:
    """Bit-exact float identity: tells -0.0 from 0.0."""
    return None if value is None else struct.pack("<d", value)


def edge_rows(path: Path) -> dict[int, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in query(path, "SELECT id, i, r, n, t, b FROM vals")}


def duckdb_reader(fmt: str) -> str:
    return {
        "parquet": "read_parquet(?)",
        "csv": "read_csv(?, header = true, allow_quoted_nulls = false)",
        "json": "read_json(?, format = 'array')",
        "jsonl": "read_json(?, format = 'newline_delimited')",
    }[fmt]


def pandas_read(fmt: str, path: Path) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "csv":
        return pd.read_csv(path, keep_default_na=False, dtype_backend="pyarrow")
    return pd.read_json(path, lines=fmt == "jsonl", dtype_backend="pyarrow")


def json_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    """A JSON export file read with the stdlib: the whole document, or line by line."""
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- JSON / CSV / Parquet


@pytest.mark.parametrize("fmt", DATASET_FORMATS)
def test_dataset_export_of_the_ledger_reads_back_everywhere(
    tmp_path: Path, ledger: Path, fmt: str
) -> None:
    out = tmp_path / "export"
    result = export_database(fmt, database=ledger, out=out)
    counts = row_counts(ledger)
    assert result.row_counts == counts
    assert result.export_path == str(out)
    manifest = check_dataset_manifest(out, fmt, ledger)

    with closing(duckdb.connect()) as con:
        for table, rows in counts.items():
            file = out / manifest["tables"][table]["file"]
            (duck_rows,) = con.execute(
                f"SELECT count(*) FROM {duckdb_reader(fmt)}", [str(file)]
            ).fetchone()
            assert duck_rows == rows, (table, "duckdb")
            assert len(pandas_read(fmt, file)) == rows, (table, "pandas")

    # Spot-check values against SQLite: every transaction's hash, fee and signature.
    file = out / manifest["tables"]["transactions"]["file"]
    expected = {
        tx_hash: (fee, signature.hex().upper() if fmt != "parquet" else signature)
        for tx_hash, fee, signature in query(
            ledger, "SELECT tx_hash, fee, signature FROM transactions"
        )
    }
    with closing(duckdb.connect()) as con:
        got = con.execute(
            f"SELECT tx_hash, fee, signature FROM {duckdb_reader(fmt)}", [str(file)]
        ).fetchall()
    assert {h: (f, s) for h, f, s in got} == expected


@pytest.mark.parametrize("fmt", DATASET_FORMATS)
def test_polars_reads_the_datasets(tmp_path: Path, ledger: Path, fmt: str) -> None:
    pl = pytest.importorskip("polars", reason="polars is not installed (optional reader)")
    out = tmp_path / "export"
    export_database(fmt, database=ledger, out=out)
    readers = {
        "parquet": pl.read_parquet,
        "csv": pl.read_csv,
        "json": pl.read_json,
        "jsonl": pl.read_ndjson,
    }
    for table, entry in read_manifest(out)["tables"].items():
        assert readers[fmt](out / entry["file"]).height == entry["rows"], table


def test_parquet_keeps_types_and_values(tmp_path: Path) -> None:
    source = make_edge_database(tmp_path / "edge.db")
    out = tmp_path / "export"
    export_database("parquet", database=source, out=out, tables=["vals", "kv", "mixed"])
    expected = edge_rows(source)
    manifest = read_manifest(out)
    assert set(manifest["tables"]) == {"vals", "kv", "mixed"}
    columns = {c["name"]: c for c in manifest["tables"]["vals"]["columns"]}
    assert (columns["n"]["type"], columns["n"]["storage_classes"]) == (
        "double",
        ["integer", "real"],
    )
    assert not any(c["coerced_to_text"] for c in columns.values())

    table = pq.read_table(out / "vals.parquet")
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("i").type == pa.int64()
    assert table.schema.field("r").type == pa.float64()
    assert table.schema.field("n").type == pa.float64()  # reals and one integer: float64
    assert table.schema.field("t").type == pa.string()
    assert table.schema.field("b").type == pa.binary()
    got = {row["id"]: row for row in table.to_pylist()}
    assert set(got) == set(expected)
    for key, (i, r, n, t, b) in expected.items():
        row = got[key]
        assert row["i"] == i and type(row["i"]) is type(i)
        assert float_bits(row["r"]) == float_bits(r)
        assert float_bits(row["n"]) == float_bits(None if n is None else float(n))
        assert row["t"] == t  # unicode, quotes, newlines, NUL, "" vs NULL
        assert row["b"] == b  # bytes equal to SQLite's, b"" vs NULL

    with closing(duckdb.connect()) as con:
        types = dict(
            con.execute(
                "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
                [str(out / "vals.parquet")],
            ).fetchall()
        )
        assert types == {
            "id": "BIGINT",
            "i": "BIGINT",
            "r": "DOUBLE",
            "n": "DOUBLE",
            "t": "VARCHAR",
            "b": "BLOB",
        }
        blobs = dict(
            con.execute("SELECT id, b FROM read_parquet(?)", [str(out / "vals.parquet")]).fetchall()
        )
    assert blobs == {key: row[4] for key, row in expected.items()}

    frame = pd.read_parquet(out / "vals.parquet")
    assert dict(zip(frame["id"], frame["b"], strict=True)) == {
        key: row[4] for key, row in expected.items()
    }
    kv = pq.read_table(out / "kv.parquet").to_pylist()
    assert sorted((r["k"], r["v"]) for r in kv) == sorted(query(source, "SELECT k, v FROM kv"))
    # A column mixing storage classes becomes text (numbers as SQL text, blobs as hex),
    # flagged in the manifest.
    mixed = pq.read_table(out / "mixed.parquet")
    assert mixed.schema.field("x").type == pa.string()
    assert mixed.column("x").to_pylist() == ["1", "a", "2.5", "01", None]
    (column,) = manifest["tables"]["mixed"]["columns"]
    assert column["coerced_to_text"] is True
    assert column["storage_classes"] == ["blob", "integer", "real", "text"]


def test_csv_and_json_encode_blobs_as_hex_and_keep_null_apart_from_empty(
    tmp_path: Path,
) -> None:
    source = make_edge_database(tmp_path / "edge.db")
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE nulls (id INTEGER PRIMARY KEY, t TEXT, b BLOB)")
        conn.executemany("INSERT INTO nulls VALUES (?, ?, ?)", [(1, "", b""), (2, None, None)])
        conn.commit()
    expected = edge_rows(source)

    csv_out = tmp_path / "csv"
    export_database("csv", database=source, out=csv_out, tables=["vals", "nulls"])
    # CSV: an empty field is NULL, "" is the empty string (text and blob alike).
    assert (csv_out / "nulls.csv").read_bytes().splitlines() == [
        b"id,t,b",
        b'1,"",""',
        b"2,,",
    ]
    with closing(duckdb.connect()) as con:
        rows = con.execute(
            "SELECT id, i, r, n, t, b FROM read_csv(?, header = true, all_varchar = true, "
            "allow_quoted_nulls = false)",
            [str(csv_out / "vals.csv")],
        ).fetchall()
    assert len(rows) == len(expected)
    for key, i, r, n, t, b in rows:
        ei, er, en, et, eb = expected[int(key)]
        assert (None if i is None else int(i)) == ei
        assert float_bits(None if r is None else float(r)) == float_bits(er)
        assert float_bits(None if n is None else float(n)) == float_bits(
            None if en is None else float(en)
        )
        assert t == et
        assert b == (None if eb is None else eb.hex().upper())
    # The stdlib csv module agrees on the text (quotes, newlines, unicode).
    with open(csv_out / "vals.csv", newline="", encoding="utf-8") as fh:
        parsed = list(csv.DictReader(fh))
    assert [r["t"] for r in parsed] == [row[3] or "" for row in expected.values()]
    frame = pd.read_csv(csv_out / "vals.csv", dtype_backend="pyarrow")
    assert [None if pd.isna(v) else int(v) for v in frame["i"]] == [
        row[0] for row in expected.values()
    ]

    for fmt in ("json", "jsonl"):
        json_out = tmp_path / fmt
        export_database(fmt, database=source, out=json_out, tables=["vals", "nulls"])
        records = json_records(json_out / f"vals{SUFFIX[fmt]}", fmt)
        assert len(records) == len(expected)
        for record in records:
            ei, er, en, et, eb = expected[record["id"]]
            assert record["i"] == ei and type(record["i"]) is type(ei)
            # JSON has no infinity: ±inf is the string "Infinity"/"-Infinity", float() reads it.
            assert isinstance(record["r"], str) == (er is not None and math.isinf(er))
            assert float_bits(None if record["r"] is None else float(record["r"])) == float_bits(er)
            assert float_bits(None if record["n"] is None else float(record["n"])) == float_bits(
                None if en is None else float(en)
            )
            assert record["t"] == et
            assert record["b"] == (None if eb is None else eb.hex().upper())
        nulls = json_records(json_out / f"nulls{SUFFIX[fmt]}", fmt)
        assert nulls == [{"id": 1, "t": "", "b": ""}, {"id": 2, "t": None, "b": None}]
        frame = pandas_read(fmt, json_out / f"vals{SUFFIX[fmt]}")
        assert list(frame["t"].fillna("<NULL>")) == [
            "<NULL>" if row[3] is None else row[3] for row in expected.values()
        ]


def _disorder_timestamps(path: Path) -> None:
    """Make id order differ from timestamp order, so that an unordered export shows."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE transactions SET timestamp = timestamp + 100000 WHERE id % 5 = 0")
        conn.commit()


def test_parquet_is_zstd_and_transactions_are_ordered_by_timestamp(
    tmp_path: Path, ledger: Path
) -> None:
    _disorder_timestamps(ledger)
    out = tmp_path / "export"
    export_database("parquet", database=ledger, out=out)
    manifest = read_manifest(out)
    assert manifest["tables"]["transactions"]["ordered_by"] == "timestamp"
    for entry in manifest["tables"].values():
        metadata = pq.ParquetFile(out / entry["file"]).metadata
        for rg in range(metadata.num_row_groups):
            for col in range(metadata.num_columns):
                assert metadata.row_group(rg).column(col).compression == "ZSTD"

    path = out / "transactions.parquet"
    table = pq.read_table(path, columns=["id", "timestamp"])
    timestamps = table.column("timestamp").to_pylist()
    assert timestamps == sorted(timestamps)
    assert sorted(zip(table.column("id").to_pylist(), timestamps, strict=True)) == sorted(
        query(ledger, "SELECT id, timestamp FROM transactions")
    )
    metadata = pq.ParquetFile(path).metadata
    index = metadata.schema.names.index("timestamp")
    for rg in range(metadata.num_row_groups):
        stats = metadata.row_group(rg).column(index).statistics
        assert stats is not None and stats.has_min_max
    assert metadata.row_group(0).column(index).statistics.min == min(timestamps)


def test_parquet_row_groups_of_a_large_table_carry_ordered_statistics(tmp_path: Path) -> None:
    source = tmp_path / "narrow.db"
    rows = 40_000
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("CREATE TABLE transactions (id INTEGER PRIMARY KEY, timestamp INTEGER)")
        # Timestamps are a permutation of the ids: inserted in a scrambled order.
        conn.executemany(
            "INSERT INTO transactions VALUES (?, ?)",
            ((i, (i * 7919) % rows) for i in range(rows)),
        )
        conn.commit()
    out = tmp_path / "export"
    export_database("parquet", database=source, out=out)
    metadata = pq.ParquetFile(out / "transactions.parquet").metadata
    assert metadata.num_rows == rows
    assert metadata.num_row_groups >= 2
    bounds = []
    for rg in range(metadata.num_row_groups):
        stats = metadata.row_group(rg).column(1).statistics
        assert stats is not None and stats.has_min_max
        bounds.append((stats.min, stats.max))
    # Ordered: each row group's range starts after the previous one ends (prunable).
    assert bounds[0][0] == 0 and bounds[-1][1] == rows - 1
    assert all(prev[1] < cur[0] for prev, cur in itertools.pairwise(bounds))


# ------------------------------------------------------------------------- from a backup


def test_export_of_a_backup_records_it_as_the_source(tmp_path: Path, ledger: Path) -> None:
    info = create_backup(ledger, tmp_path / "backups")
    backup = Path(info.backup_path)
    # The live database moves on; the export must be of the backup's state.
    with closing(sqlite3.connect(ledger)) as conn:
        conn.execute("DELETE FROM transaction_parents")
        conn.commit()
    result = export_database("parquet", backup=backup, out=tmp_path / "export")
    manifest = read_manifest(tmp_path / "export")
    source = manifest["source"]
    assert (source["kind"], source["path"], source["checksum"]) == (
        "backup",
        str(backup),
        sha3(backup),
    )
    assert info.checksum == sha3(backup)
    assert result.source == manifest["source"]
    assert result.row_counts == row_counts(backup)
    assert result.row_counts["transaction_parents"] > 0
    assert {t: e["rows"] for t, e in manifest["tables"].items()} == row_counts(backup)


def test_a_corrupted_backup_is_refused_and_nothing_is_written(tmp_path: Path, ledger: Path) -> None:
    info = create_backup(ledger, tmp_path / "backups")
    backup = Path(info.backup_path)
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))
    exports = tmp_path / "exports"
    for fmt in ("parquet", "sql"):
        with pytest.raises(VerificationError, match="failed verification"):
            export_database(fmt, backup=backup, export_dir=exports)
    assert not exports.exists() or not any(exports.iterdir())


# ------------------------------------------------------------------ failure leaves nothing


def test_an_existing_target_is_refused_and_left_untouched(tmp_path: Path, ledger: Path) -> None:
    dump = tmp_path / "dump.sql"
    dump.write_text("precious\n")
    with pytest.raises(ConfigError, match="already exists"):
        export_database("sql", database=ledger, out=dump)
    assert dump.read_text() == "precious\n"

    directory = tmp_path / "dataset"
    directory.mkdir()
    (directory / "keep.txt").write_text("precious\n")
    for fmt in DATASET_FORMATS:
        with pytest.raises(ConfigError, match="already exists"):
            export_database(fmt, database=ledger, out=directory)
    assert [p.name for p in directory.iterdir()] == ["keep.txt"]
    assert (directory / "keep.txt").read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("blockchain")) == [
        "dataset",
        "dump.sql",
    ]


@pytest.mark.parametrize("fmt", ["sql", "parquet"])
def test_an_unknown_table_is_refused_by_name(tmp_path: Path, ledger: Path, fmt: str) -> None:
    exports = tmp_path / "exports"
    with pytest.raises(ConfigError, match="no_such_table") as caught:
        export_database(
            fmt, database=ledger, export_dir=exports, tables=["transactions", "no_such_table"]
        )
    assert "transactions," not in caught.value.message  # only the unknown one is named
    assert not exports.exists() or not any(exports.iterdir())
