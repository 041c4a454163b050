"""Shared by the unit and the integration half of test_export.py."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

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
