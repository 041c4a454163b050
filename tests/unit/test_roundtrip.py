"""Property: create_backup then restore_backup reproduces any database exactly.

Random schemas (column affinities, WITHOUT ROWID, rowid aliases, indexes, views, odd
identifiers, page sizes, journal modes) and random rows (64-bit edges, signed zeros,
infinities, subnormals, unicode text, blobs up to 64 KiB, NULLs).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagvault.backup import create_backup
from dagvault.db import quote_identifier as q
from dagvault.digest import database_digest
from dagvault.restore import restore_backup

AFFINITIES = ("INTEGER", "REAL", "TEXT", "BLOB", "")
INT64_EDGES = (-(2**63), -(2**63) + 1, -(2**31) - 1, -1, 0, 1, 2**31, 2**53 + 1, 2**63 - 1)
FLOAT_EDGES = (-0.0, 0.0, float("inf"), float("-inf"), 5e-324, -5e-324, 2.2250738585072014e-308)
TEXT_EDGES = ("", "'", '"', "''", "\n", "a\r\nb", "O'Reilly", "\t;--", "ß", "😀", "\u202e")

# No "s": a name can never start with "sqlite", which SQLite and dagvault treat specially.
identifiers = st.text(alphabet="abcxyzABCXYZ_ \"'é1-", min_size=1, max_size=6)

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(INT64_EDGES),
    st.floats(allow_nan=False),
    st.sampled_from(FLOAT_EDGES),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    st.sampled_from(TEXT_EDGES),
    st.binary(max_size=40),
    # Large blobs (overflow pages) from a seed: cheap to draw, still reproducible.
    st.builds(
        lambda seed, size: random.Random(seed).randbytes(size),
        st.integers(0, 2**32),
        st.integers(0, 64 * 1024),
    ),
)


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[tuple[str, str]]  # (name, declared type)
    primary_key: int  # the first N columns; 0: none
    without_rowid: bool
    index: list[int]  # column positions; empty: no index
    view: bool
    rows: list[tuple[Any, ...]]

    def create(self) -> list[str]:
        columns = [f"{q(name)} {decl}".rstrip() for name, decl in self.columns]
        if self.primary_key:
            key = ", ".join(q(name) for name, _ in self.columns[: self.primary_key])
            columns.append(f"PRIMARY KEY ({key})")
        suffix = " WITHOUT ROWID" if self.without_rowid else ""
        statements = [f"CREATE TABLE {q(self.name)} ({', '.join(columns)}){suffix}"]
        if self.index:
            indexed = ", ".join(q(self.columns[i][0]) for i in self.index)
            statements.append(f"CREATE INDEX {q('ix ' + self.name)} ON {q(self.name)} ({indexed})")
        if self.view:
            statements.append(f"CREATE VIEW {q('v ' + self.name)} AS SELECT * FROM {q(self.name)}")
        return statements


@st.composite
def tables(draw: st.DrawFn, name: str) -> Table:
    names = draw(st.lists(identifiers, min_size=1, max_size=5, unique_by=str.lower))
    columns = [(n, draw(st.sampled_from(AFFINITIES))) for n in names]
    without_rowid = draw(st.booleans())
    primary_key = draw(st.integers(1 if without_rowid else 0, len(columns)))
    index = draw(st.lists(st.integers(0, len(columns) - 1), max_size=2, unique=True))
    rows = draw(st.lists(st.tuples(*[values] * len(columns)), max_size=12))
    return Table(name, columns, primary_key, without_rowid, index, draw(st.booleans()), rows)


@st.composite
def databases(draw: st.DrawFn) -> tuple[int, str, list[Table]]:
    # unique_by=str.lower: SQLite folds the case of identifiers.
    names = draw(st.lists(identifiers, min_size=1, max_size=4, unique_by=str.lower))
    page_size = draw(st.sampled_from([512, 1024, 4096, 8192, 65536]))
    journal_mode = draw(st.sampled_from(["wal", "delete"]))
    return page_size, journal_mode, [draw(tables(name)) for name in names]


def build(path: Path, page_size: int, journal_mode: str, schema: list[Table]) -> dict[str, int]:
    """Create the database; rows violating a key (or a rowid alias's type) are skipped.
    Returns the row count of each table."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA page_size={page_size}")
        assert conn.execute(f"PRAGMA journal_mode={journal_mode}").fetchone()[0] == journal_mode
        conn.execute("BEGIN")
        counts = {}
        for table in schema:
            for statement in table.create():
                conn.execute(statement)
            insert = f"INSERT INTO {q(table.name)} VALUES ({', '.join('?' * len(table.columns))})"
            for row in table.rows:
                # Skips a duplicate or NULL key, or a non-integer for a rowid alias.
                with contextlib.suppress(sqlite3.IntegrityError):
                    conn.execute(insert, row)
            counts[table.name] = conn.execute(f"SELECT count(*) FROM {q(table.name)}").fetchone()[0]
        conn.execute("COMMIT")
        assert conn.execute("PRAGMA page_size").fetchone()[0] == page_size
    return counts


def digest_of(path: Path) -> dict[str, str]:
    assert path.is_file(), path
    with closing(sqlite3.connect(path)) as conn:
        return database_digest(conn)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(databases())
def test_backup_then_restore_reproduces_the_database(
    database: tuple[int, str, list[Table]],
) -> None:
    page_size, journal_mode, schema = database
    with tempfile.TemporaryDirectory(prefix="dagvault-roundtrip-") as tmp:
        root = Path(tmp)
        source = root / "source.db"
        counts = build(source, page_size, journal_mode, schema)
        expected = digest_of(source)
        assert set(expected) == {"sqlite_schema", *counts}

        info = create_backup(source, root / "backups")
        backup = Path(info.backup_path)
        assert info.row_counts == counts
        assert info.page_size == page_size
        assert digest_of(backup) == expected

        target = root / "restored" / "ledger.db"
        result = restore_backup(backup, target)

        assert result.success
        assert result.pre_restore_backup is None
        assert digest_of(target) == expected
        with closing(sqlite3.connect(target)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA page_size").fetchone()[0] == page_size
        assert digest_of(source) == expected  # the source is never written
