"""import_sql on real files: round trips through export, bad dumps, awkward statement layouts.

A bad dump must be refused (InvalidDump, exit code 4) before the live database is touched:
its bytes stay identical and no staging directory is left beside it.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from dagvault.digest import database_digest
from dagvault.errors import InvalidDump
from dagvault.export import export_database
from dagvault.importer import import_sql
from dagvault.restores import HISTORY_SUFFIX
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_file


def digest(path: Path) -> dict[str, str]:
    with closing(sqlite3.connect(path)) as conn:
        return database_digest(conn)


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def file_state(db: Path) -> dict[str, str | None]:
    """SHA3-256 of the database file and of its -wal/-journal (None where absent)."""
    state: dict[str, str | None] = {}
    for suffix in ("", "-wal", "-journal"):
        path = Path(f"{db}{suffix}")
        state[suffix] = hashlib.sha3_256(path.read_bytes()).hexdigest() if path.exists() else None
    return state


def query_counts(db: Path) -> dict[str, int]:
    names = [
        n
        for (n,) in query(
            db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: query(db, f'SELECT count(*) FROM "{n}"')[0][0] for n in names}


def leftovers(directory: Path) -> list[str]:
    """Hidden entries (the ``.dagvault-import.*`` staging directory, temp files) other than
    the dagvault lock files and the restore history, which stay by design."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name.startswith(".") and not p.name.endswith((".dagvault.lock", HISTORY_SUFFIX))
    )


def dump_of(db: Path, out: Path) -> Path:
    return Path(export_database("sql", database=db, out=out).export_path)


# ----------------------------------------------------------------------------- round trips


def test_round_trip_restores_the_exported_state_with_a_verified_pre_import_backup(
    tmp_path: Path, ledger: Path
) -> None:
    exported_state = digest(ledger)
    dump = dump_of(ledger, tmp_path / "ledger.sql")

    # The live database moves on after the export: new transactions, deleted DAG edges.
    create_sample_ledger(ledger, 25, seed=7, append=True)
    with closing(sqlite3.connect(ledger)) as conn:
        conn.execute("DELETE FROM transaction_parents WHERE child_id % 3 = 0")
        conn.commit()
    modified_state = digest(ledger)
    assert modified_state != exported_state

    result = import_sql(dump, ledger)
    assert digest(ledger) == exported_state
    assert query(ledger, "PRAGMA integrity_check") == [("ok",)]
    assert result.row_counts == query_counts(ledger)  # what was built is what is live

    assert result.pre_import_backup is not None
    pre = Path(result.pre_import_backup)
    assert pre.parent == ledger.parent
    assert re.fullmatch(re.escape(ledger.name) + r"\.pre_restore_\d+(_\d+)?", pre.name)
    report = verify_file(pre)
    assert report.ok, report.problems
    assert digest(pre) == modified_state  # the state the import replaced
    assert leftovers(tmp_path) == []


def test_import_into_a_new_file(tmp_path: Path, ledger: Path) -> None:
    dump = dump_of(ledger, tmp_path / "ledger.sql")
    target = tmp_path / "restored" / "copy.db"
    result = import_sql(dump, target)
    assert digest(target) == digest(ledger)
    assert result.pre_import_backup is None  # nothing to protect in a new file
    assert result.row_counts == query_counts(ledger)
    assert leftovers(target.parent) == []


def test_edge_values_survive_export_and_import(tmp_path: Path) -> None:
    source = tmp_path / "edge.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.execute(
            "CREATE TABLE vals (id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, r REAL, n, "
            "t TEXT, b BLOB)"
        )
        conn.executemany(
            "INSERT INTO vals (i, r, n, t, b) VALUES (?, ?, ?, ?, ?)",
            [
                (-(2**63), -0.0, -0.0, "", b""),
                (2**63 - 1, float("inf"), float("-inf"), None, None),
                (0, 0.1 + 0.2, 1e308, "a\r\nb\rc\n", b"\x00;'"),
                (1, 5e-324, None, "nul\x00;'quote'", bytes(range(256))),
                (None, None, None, "üñí 🚀 -- ; /* */", b"\r\n"),
            ],
        )
        conn.execute("PRAGMA user_version=7")
        conn.commit()
    dump = dump_of(source, tmp_path / "edge.sql")
    target = tmp_path / "imported.db"
    import_sql(dump, target)
    assert digest(target) == digest(source)
    assert query(target, "SELECT t FROM vals WHERE id = 3") == [("a\r\nb\rc\n",)]
    assert query(target, "PRAGMA user_version") == [(7,)]
    assert query(target, "SELECT seq FROM sqlite_sequence") == [(5,)]


# ------------------------------------------------------------------------------- bad dumps


def _bad_dump(kind: str, good: bytes, live: Path) -> bytes:
    if kind == "malformed statement":
        return good.replace(b"CREATE TABLE", b"CREAT TABLE", 1)
    if kind == "wrong number of values":
        return b"BEGIN TRANSACTION;\nCREATE TABLE x(a);\nINSERT INTO x VALUES(1,2);\nCOMMIT;\n"
    if kind == "cut mid-statement":
        cut = good.index(b"INSERT INTO", len(good) // 2) + 20
        return good[:cut]
    if kind == "cut before COMMIT":
        return good[: good.rindex(b"COMMIT;")]
    if kind == "empty file":
        return b""
    if kind == "whitespace only":
        return b"\n  \n"
    if kind == "binary garbage":  # deterministic, and not UTF-8 from its first byte
        return b"\xff\xfe" + random.Random(1).randbytes(64 * 1024)
    if kind == "a SQLite database file":
        return live.read_bytes()
    raise AssertionError(kind)


BAD_DUMPS = [
    "malformed statement",
    "wrong number of values",
    "cut mid-statement",
    "cut before COMMIT",
    "empty file",
    "whitespace only",
    "binary garbage",
    "a SQLite database file",
]


@pytest.mark.parametrize("kind", BAD_DUMPS)
def test_a_bad_dump_is_refused_and_the_live_database_is_untouched(
    tmp_path: Path, ledger: Path, kind: str
) -> None:
    good = dump_of(ledger, tmp_path / "good.sql").read_bytes()
    # Checkpoint and close: the file is now stable, so its bytes can be compared.
    with closing(sqlite3.connect(ledger)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before_digest, before_files = digest(ledger), file_state(ledger)
    bad = tmp_path / "bad.sql"
    bad.write_bytes(_bad_dump(kind, good, ledger))

    with pytest.raises(InvalidDump) as caught:
        import_sql(bad, ledger)
    assert caught.value.exit_code == 4
    assert str(bad) in caught.value.message
    assert caught.value.hint
    assert file_state(ledger) == before_files  # byte for byte
    assert digest(ledger) == before_digest
    assert leftovers(tmp_path) == []
    assert not list(tmp_path.glob("*.pre_restore_*"))


def test_messages_say_what_is_wrong(tmp_path: Path, ledger: Path) -> None:
    good = dump_of(ledger, tmp_path / "good.sql").read_bytes()
    expected = {
        "cut mid-statement": "middle of a statement",
        "cut before COMMIT": "without COMMIT",
        "empty file": "no SQL statement",
        "binary garbage": "not UTF-8",
        "malformed statement": "syntax error",
    }
    for kind, text in expected.items():
        bad = tmp_path / f"{kind.replace(' ', '-')}.sql"
        bad.write_bytes(_bad_dump(kind, good, ledger))
        with pytest.raises(InvalidDump, match=text):
            import_sql(bad, tmp_path / "never.db")
        assert not (tmp_path / "never.db").exists()


# --------------------------------------------------------------------- statement layouts

HAND_WRITTEN_DUMP = """\
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
-- a comment; with a semicolon
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,  -- trailing; comment
    tag TEXT
);
CREATE TABLE audit (id INTEGER PRIMARY KEY, note_id INTEGER, what TEXT);
INSERT INTO notes VALUES (1, 'one; two; three', 'a'); INSERT INTO notes VALUES (2, 'x', 'b');
INSERT INTO notes VALUES (3, 'spans
several
lines; with semicolons;
and ''quotes''', NULL);
INSERT INTO notes VALUES (4, 'ends with;', 'c');INSERT INTO notes VALUES(5,'-- no comment','d');
INSERT INTO notes VALUES (6, 'crlf\r\ninside', '/* not a comment either */');
CREATE TRIGGER trg_notes AFTER INSERT ON notes
BEGIN
    INSERT INTO audit (note_id, what) VALUES (NEW.id, 'inserted; logged');
    UPDATE notes SET tag = coalesce(NEW.tag, 'none;') WHERE id = NEW.id;
END;
CREATE VIEW v_notes AS SELECT id, body FROM notes WHERE body LIKE '%;%';
COMMIT;
"""


def test_statements_in_awkward_layouts_import_correctly(tmp_path: Path) -> None:
    dump = tmp_path / "hand.sql"
    dump.write_bytes(HAND_WRITTEN_DUMP.encode())
    target = tmp_path / "hand.db"
    result = import_sql(dump, target)
    assert result.row_counts == {"notes": 6, "audit": 0}  # the trigger came after the rows
    assert query(target, "SELECT id, body, tag FROM notes ORDER BY id") == [
        (1, "one; two; three", "a"),
        (2, "x", "b"),
        (3, "spans\nseveral\nlines; with semicolons;\nand 'quotes'", None),
        (4, "ends with;", "c"),
        (5, "-- no comment", "d"),
        (6, "crlf\r\ninside", "/* not a comment either */"),
    ]
    assert query(target, "SELECT id FROM v_notes ORDER BY id") == [(1,), (3,), (4,)]
    # The whole trigger body (with its ';') was one statement: it works.
    with closing(sqlite3.connect(target)) as conn:
        conn.execute("INSERT INTO notes (id, body) VALUES (7, 'new')")
        conn.commit()
    assert query(target, "SELECT note_id, what FROM audit") == [(7, "inserted; logged")]
    assert query(target, "SELECT tag FROM notes WHERE id = 7") == [("none;",)]
