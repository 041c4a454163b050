"""export_database on real SQLite files, read back by independent tools.

SQL dumps are loaded by the stock ``sqlite3`` shell; JSON/CSV/Parquet datasets are read
back with DuckDB, pandas, pyarrow (and polars where installed). A live database is
exported while a real writer process commits into it; failures (existing target, unknown
table, corrupt backup, a full disk via RLIMIT_FSIZE in a child process) must leave
nothing behind.

Integration half; the tests that need no server or child process are in
tests/unit/test_export.py."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import pytest
from _shared.export import (
    EDGE_ROWS,
    check_dataset_manifest,
    make_edge_database,
    query,
    read_manifest,
    row_counts,
    sha3,
)

from dagvault.digest import database_digest
from dagvault.export import export_database

CliRunner = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest

SQLITE3_CLI = shutil.which("sqlite3")


def digest(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as conn:
        return database_digest(conn)


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
