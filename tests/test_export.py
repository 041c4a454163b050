"""export_database on real SQLite files, read back by independent tools.

SQL dumps are loaded by the stock ``sqlite3`` shell; JSON/CSV/Parquet datasets are read
back with DuckDB, pandas, pyarrow (and polars where installed). A live database is
exported while a real writer process commits into it; failures (existing target, unknown
table, corrupt backup, a full disk via RLIMIT_FSIZE in a child process) must leave
nothing behind.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import shutil
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagvault.backup import create_backup
from dagvault.digest import database_digest
from dagvault.errors import ConfigError, VerificationError
from dagvault.export import export_database

CliRunner = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest

SQLITE3_CLI = shutil.which("sqlite3")
DATASET_FORMATS = ("json", "jsonl", "csv", "parquet")
SUFFIX = {"json": ".json", "jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}

# (i INTEGER, r REAL, n <no type: keeps -0.0; reals and one integer>, t TEXT, b BLOB).
EDGE_ROWS: list[tuple[Any, ...]] = [
    (-(2**63), -0.0, -0.0, "", b""),
    (2**63 - 1, 1e308, 1e308, None, None),
    (0, math.inf, math.inf, 'quo\'te "dq"\nline;semi -- not /* a comment */', b"\x00\x01\xff"),
    (1, -math.inf, -math.inf, "üñí©ødé 🚀 中文", b"abc"),
    (None, 0.1 + 0.2, 0.1 + 0.2, "nul\x00inside", bytes(range(256))),
    (-1, 5e-324, 2.2250738585072014e-308, "x'); DROP TABLE vals; --", b"';"),
    (2**53 + 1, -1.7976931348623157e308, 1, "\r\n\tcr lf", b"\n"),
    (None, None, None, None, None),
]

EDGE_SCHEMA = (
    "CREATE TABLE vals (id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, r REAL, n, "
    "t TEXT, b BLOB)",
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID",
    "CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT)",
    "CREATE TABLE mixed (x)",  # one column, every storage class
    "CREATE INDEX idx_vals_i ON vals(i)",
    "CREATE UNIQUE INDEX idx_vals_t ON vals(t) WHERE t IS NOT NULL AND t != ''",
    "CREATE VIEW v_vals AS SELECT id, t FROM vals WHERE i > 0",
    "CREATE TRIGGER trg_vals AFTER INSERT ON vals BEGIN "
    "INSERT INTO log(msg) VALUES ('ins;' || NEW.id); END",
)


# ----------------------------------------------------------------------------- helpers


def sha3(path: Path) -> str:
    return hashlib.sha3_256(path.read_bytes()).hexdigest()


def digest(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as conn:
        return database_digest(conn)


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def row_counts(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def float_bits(value: float | None) -> bytes | None:
    """Bit-exact float identity: tells -0.0 from 0.0."""
    return None if value is None else struct.pack("<d", value)


def make_edge_database(path: Path) -> Path:
    """Views, a trigger, indexes, WITHOUT ROWID, AUTOINCREMENT, pragmas and edge values."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in EDGE_SCHEMA:
            conn.execute(statement)
        conn.execute("PRAGMA user_version=42")
        conn.execute("PRAGMA application_id=1234567")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO vals (i, r, n, t, b) VALUES (?, ?, ?, ?, ?)", EDGE_ROWS)
        conn.executemany("INSERT INTO kv VALUES (?, ?)", [("a;b", b"1"), ("", None), ("é\n", b"")])
        conn.executemany(
            "INSERT INTO mixed VALUES (?)", [(1,), ("a",), (2.5,), (b"\x01",), (None,)]
        )
        # AUTOINCREMENT: the sequence stays ahead of the largest remaining id.
        conn.execute("INSERT INTO vals (t) VALUES ('deleted')")
        conn.execute("DELETE FROM vals WHERE t = 'deleted'")
        conn.execute("COMMIT")
    return path


def edge_rows(path: Path) -> dict[int, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in query(path, "SELECT id, i, r, n, t, b FROM vals")}


def read_manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "manifest.json").read_text())


def check_dataset_manifest(out: Path, fmt: str, source: Path) -> dict[str, Any]:
    manifest = read_manifest(out)
    assert manifest["format"] == fmt
    assert manifest["format_version"] == 1
    assert datetime.fromisoformat(manifest["exported_at"]).tzinfo is not None
    assert manifest["source"]["kind"] == "live database"
    assert manifest["source"]["path"] == str(source.resolve())
    counts = row_counts(source)
    assert set(manifest["tables"]) == set(counts)
    with closing(sqlite3.connect(source)) as conn:
        for table, entry in manifest["tables"].items():
            file = out / entry["file"]
            assert file.name == table + SUFFIX[fmt]
            assert entry["rows"] == counts[table]
            assert entry["bytes"] == file.stat().st_size
            assert entry["sha3_256"] == sha3(file)
            declared = [(r[1], r[2]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
            assert [(c["name"], c["sqlite_declared_type"]) for c in entry["columns"]] == declared
            assert all(c["type"] for c in entry["columns"])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [e["file"] for e in manifest["tables"].values()] + ["manifest.json"]
    )
    return manifest


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


# --------------------------------------------------------------------------------- SQL


@pytest.mark.skipif(SQLITE3_CLI is None, reason="the stock sqlite3 shell is not installed")
@pytest.mark.parametrize("source_kind", ["edge values", "sample ledger"])
def test_sql_dump_loads_in_the_sqlite3_shell_with_identical_contents(
    tmp_path: Path, ledger: Path, source_kind: str
) -> None:
    source = make_edge_database(tmp_path / "edge.db") if source_kind == "edge values" else ledger
    before = digest(source)
    result = export_database("sql", database=source, out=tmp_path / "dump.sql")
    dump = Path(result.export_path)
    assert dump == tmp_path / "dump.sql"

    loaded = tmp_path / "loaded.db"
    with open(dump, "rb") as stdin:
        proc = subprocess.run(
            [str(SQLITE3_CLI), "-batch", "-bail", "-init", "/dev/null", str(loaded)],
            stdin=stdin,
            capture_output=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    assert digest(loaded) == before  # schema (tables, indexes, views, triggers) and rows
    assert query(loaded, "PRAGMA integrity_check") == [("ok",)]
    for pragma in ("user_version", "application_id"):
        assert query(loaded, f"PRAGMA {pragma}") == query(source, f"PRAGMA {pragma}")

    manifest_path = dump.with_name("dump.sql.manifest.json")
    assert result.manifest_path == str(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["format"] == "sql"
    assert manifest["file"] == {
        "name": "dump.sql",
        "bytes": dump.stat().st_size,
        "sha3_256": sha3(dump),
    }
    assert {t: e["rows"] for t, e in manifest["tables"].items()} == row_counts(source)
    assert manifest["source"]["kind"] == "live database"
    assert manifest["source"]["path"] == str(source.resolve())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("dump")) == [
        "dump.sql",
        "dump.sql.manifest.json",
    ]

    if source_kind == "edge values":
        # sqlite_sequence and the -0.0 of the untyped column came through too...
        assert query(loaded, "SELECT name, seq FROM sqlite_sequence") == [("vals", 9)]
        (n,) = query(loaded, "SELECT n FROM vals WHERE id = 1")[0]
        assert math.copysign(1.0, n) == -1.0
        # ...and the triggers were created after the rows: they did not fire on the load,
        # but they work afterwards.
        assert query(loaded, "SELECT count(*) FROM log") == [(len(EDGE_ROWS) + 1,)]
        with closing(sqlite3.connect(loaded)) as conn:
            conn.execute("INSERT INTO vals (t) VALUES ('after')")
            conn.commit()
            assert conn.execute("SELECT msg FROM log ORDER BY id DESC LIMIT 1").fetchone() == (
                "ins;10",
            )


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


_PROGRESS_CHILD = """
import tempfile
from pathlib import Path
import duckdb
from dagvault.export import datasets
setting = "SELECT current_setting('enable_progress_bar')"
spill = Path(tempfile.mkdtemp()) / "spill"
for con in (duckdb.connect(), datasets.duckdb_connection(spill)):
    print(con.execute(setting).fetchone()[0])
"""


def test_duckdb_progress_bar_is_off_when_stdout_is_a_pipe() -> None:
    # DuckDB draws its progress bar on stdout for queries over 2 s, terminal or not (but
    # not under pytest's capture, hence the child process): it would corrupt
    # `dagvault export --json | jq`.
    proc = subprocess.run(
        [sys.executable, "-c", _PROGRESS_CHILD], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]  # DuckDB's default, then dagvault's


# ------------------------------------------------------ consistency under a live writer

# Commits, as fast as it can until STOP exists, one block with an 8 KiB payload and three
# edges per transaction; prints "ready" after its first commit and its commit count at the end.
_WRITER = r"""
import os, sqlite3, sys
db, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("PRAGMA synchronous=NORMAL")
commits = 0
while not os.path.exists(stop):
    conn.execute("BEGIN IMMEDIATE")
    cur = conn.execute("INSERT INTO blocks (payload) VALUES (randomblob(8192))")
    conn.executemany("INSERT INTO edges VALUES (?, ?)", [(cur.lastrowid, n) for n in range(3)])
    conn.execute("COMMIT")
    commits += 1
    if commits == 1:
        print("ready", flush=True)
print(commits, flush=True)
"""


def _make_writer_database(path: Path, blocks: int) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE blocks (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        conn.execute(
            "CREATE TABLE edges (block_id INTEGER NOT NULL, n INTEGER NOT NULL, "
            "PRIMARY KEY (block_id, n)) WITHOUT ROWID"
        )
        conn.execute("BEGIN")
        for block in range(1, blocks + 1):
            conn.execute("INSERT INTO blocks VALUES (?, randomblob(8192))", (block,))
            conn.executemany("INSERT INTO edges VALUES (?, ?)", [(block, n) for n in range(3)])
        conn.execute("COMMIT")


def _check_exported_state(run: Callable[[str], list[tuple[Any, ...]]], blocks: int) -> None:
    """The exported blocks are exactly 1..blocks, each with its three edges, nothing more."""
    assert run("SELECT count(*), min(id), max(id) FROM blocks") == [(blocks, 1, blocks)]
    assert run("SELECT count(*) FROM edges") == [(3 * blocks,)]
    assert run("SELECT count(*) FROM edges WHERE block_id NOT IN (SELECT id FROM blocks)") == [(0,)]
    assert run(
        "SELECT count(*) FROM (SELECT block_id FROM edges GROUP BY block_id HAVING count(*) <> 3)"
    ) == [(0,)]


@pytest.mark.parametrize("fmt", ["parquet", "sql"])
def test_export_under_a_committing_writer_is_one_consistent_state(tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "live.db"
    _make_writer_database(source, blocks=3000)
    stop = tmp_path / "stop-writer"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(source), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    out = tmp_path / ("export.sql" if fmt == "sql" else "export")
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        before = row_counts(source)["blocks"]
        result = export_database(fmt, database=source, out=out)
        after = row_counts(source)["blocks"]
    finally:
        stop.touch()
        try:
            writer.wait(timeout=30)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert writer.returncode == 0
    blocks, edges = result.row_counts["blocks"], result.row_counts["edges"]
    # The writer really committed while the export ran (else this test proves nothing).
    assert after - before >= 3, (before, after)
    assert before <= blocks <= after
    assert edges == 3 * blocks  # both tables come from the same committed state

    if fmt == "parquet":
        assert {t: e["rows"] for t, e in read_manifest(out)["tables"].items()} == {
            "blocks": blocks,
            "edges": edges,
        }
        with closing(duckdb.connect()) as con:
            for table in ("blocks", "edges"):
                con.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{out / table}.parquet')"
                )
            _check_exported_state(lambda sql: con.execute(sql).fetchall(), blocks)
    else:
        loaded = tmp_path / "loaded.db"
        with closing(sqlite3.connect(loaded)) as conn:
            conn.executescript(out.read_text())
        _check_exported_state(lambda sql: query(loaded, sql), blocks)


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


# A child that exports under RLIMIT_FSIZE (writes past the limit fail with EFBIG instead of
# killing the process: SIGXFSZ is ignored) and reports the outcome as one JSON line.
_FULL_DISK_CHILD = r"""
import json, resource, signal, sys
from pathlib import Path
from dagvault.errors import DagvaultError
from dagvault.export import export_database
fmt, db, exports, limit = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    export_database(fmt, database=db, export_dir=exports)
except DagvaultError as exc:
    print(json.dumps({"classes": [c.__name__ for c in type(exc).__mro__],
                      "exit_code": exc.exit_code, "message": exc.message}))
except BaseException as exc:
    print(json.dumps({"classes": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}))
else:
    print(json.dumps({"classes": ["no error"]}))
"""


@pytest.mark.parametrize("fmt", ["sql", "json", "csv", "parquet"])
def test_a_full_disk_fails_with_a_storage_error_and_leaves_nothing(
    tmp_path: Path, ledger: Path, fmt: str
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "earlier-export.txt").write_text("kept\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, fmt, str(ledger), str(exports), "100000"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "StorageError" in outcome["classes"], outcome
    assert outcome["classes"][0] == "DiskFull", outcome
    assert outcome["exit_code"] == 6
    assert [p.name for p in exports.iterdir()] == ["earlier-export.txt"]
    assert list(cwd.iterdir()) == []  # no DuckDB spill directory either


# ----------------------------------------------------------------------------- the CLI


def test_cli_export_parquet_prints_json(cli: CliRunner, tmp_path: Path, ledger: Path) -> None:
    out = tmp_path / "cli-export"
    proc = cli("export", "--format", "parquet", "--db", str(ledger), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout holds the JSON document and nothing else
    assert result["success"] is True
    assert result["format"] == "parquet"
    assert Path(result["export_path"]).resolve() == out.resolve()
    assert result["row_counts"] == row_counts(ledger)
    check_dataset_manifest(out, "parquet", ledger)


def test_cli_import_of_a_truncated_dump_exits_4_and_changes_nothing(
    cli: CliRunner, tmp_path: Path, ledger: Path
) -> None:
    dump = Path(export_database("sql", database=ledger, out=tmp_path / "d.sql").export_path)
    data = dump.read_bytes()
    truncated = tmp_path / "truncated.sql"
    truncated.write_bytes(data[: len(data) // 2])
    before = digest(ledger)
    proc = cli("import-sql", str(truncated), "--db", str(ledger))
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "Error:" in proc.stderr and "Try:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "truncated" in proc.stderr
    assert digest(ledger) == before
    assert not list(tmp_path.glob(".dagvault-import.*"))
    assert not list(tmp_path.glob("blockchain.db.pre_restore_*"))
