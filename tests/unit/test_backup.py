"""Full backups (dagvault.backup.create_backup): names, sidecar, content, schemas, errors, locks.

Real SQLite files in tmp_path, real child processes for lock holders; nothing of dagvault
is mocked.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_backup.py."""

from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import zstandard
from _helpers import (
    content_digest,
    hidden_leftovers,
    integrity,
    make_database,
    query,
    read_meta_json,
    sha3_file,
    visible_files,
)

from dagvault import lock
from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.digest import database_digest
from dagvault.errors import (
    ConfigError,
    DatabaseLocked,
    DatabaseNotFound,
    NotASQLiteDatabase,
    OperationInProgress,
    StorageError,
)
from dagvault.meta import read_meta
from dagvault.verify import verify_file

# The BackupInfo fields of the system description, all at the top level of the sidecar.
DESCRIPTION_FIELDS = (
    "timestamp",
    "backup_path",
    "database_path",
    "file_size",
    "total_transactions",
    "total_nodes",
    "backup_type",
    "compression_enabled",
    "checksum",
    "metadata",
)


def source_row_counts(path: Path) -> dict[str, int]:
    tables = [
        name
        for (name,) in query(
            path,
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
    ]
    quoted = {t: '"' + t.replace('"', '""') + '"' for t in tables}
    return {t: query(path, f"SELECT count(*) FROM {quoted[t]}")[0][0] for t in tables}


def files_with_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


# --------------------------------------------------------------------------- name and sidecar


def test_backup_name_and_sidecar_hold_every_field(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    before = int(time.time())
    info = create_backup(ledger, backups, description="nightly run")
    after = int(time.time())

    path = Path(info.backup_path)
    assert path.parent == backups
    match = re.fullmatch(r"blockchain_(\d+)\.db", path.name)
    assert match, path.name
    assert before <= int(match[1]) <= after
    assert int(match[1]) == info.timestamp

    document = read_meta_json(path)
    assert set(DESCRIPTION_FIELDS) | {"format_version"} <= set(document)
    assert document["format_version"] == 3 and document["auth_tag"] is None  # no key
    assert document["timestamp"] == info.timestamp
    assert document["backup_path"] == str(path)
    assert document["database_path"] == str(ledger.resolve())
    assert document["file_size"] == path.stat().st_size > 0
    assert document["total_transactions"] == 300
    assert document["total_nodes"] == 16
    assert document["backup_type"] == "Full"
    assert document["compression_enabled"] is False
    assert document["checksum"] == sha3_file(path)
    assert document["verification"]["status"] == "unverified"

    metadata = document["metadata"]
    assert metadata["description"] == "nightly run"
    assert document["row_counts"] == source_row_counts(ledger)
    assert document["row_counts"]["transactions"] == 300
    assert set(document["row_counts"]) == {"nodes", "transactions", "transaction_parents"}
    assert metadata["sqlite_version"] == sqlite3.sqlite_version
    assert metadata["page_size"] == "4096"  # the description's map of strings
    assert 0 <= float(metadata["duration_seconds"]) < 60
    assert document["warnings"] == []

    # The returned BackupInfo is exactly what the sidecar holds.
    assert read_meta(path) == info
    assert visible_files(backups) == [path.name, path.name + ".meta"]
    assert hidden_leftovers(backups) == []


def test_backup_is_a_plain_rollback_journal_copy_with_identical_content(
    ledger: Path, tmp_path: Path
) -> None:
    source_bytes = sha3_file(ledger)
    info = create_backup(ledger, tmp_path / "backups")
    path = Path(info.backup_path)

    header = path.read_bytes()[:100]
    assert header[:16] == b"SQLite format 3\x00"
    assert (header[18], header[19]) == (1, 1), "backup must not be marked WAL"
    assert info.checksum == sha3_file(path)
    assert integrity(path) == ["ok"]
    assert query(path, "PRAGMA journal_mode") == [("delete",)]
    assert content_digest(path) == content_digest(ledger)
    # Opening the backup left no companions, and the source was only read.
    assert not any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm", "-journal"))
    assert sha3_file(ledger) == source_bytes


def test_backups_within_one_second_get_distinct_names(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    infos = []
    deadline = time.monotonic() + 10
    while True:
        infos.append(create_backup(ledger, backups))
        stamps = [i.timestamp for i in infos]
        if len(set(stamps)) < len(stamps):
            break
        assert time.monotonic() < deadline, "never took two backups within one second"

    paths = [Path(i.backup_path) for i in infos]
    assert len(set(paths)) == len(paths)
    second = infos[-1].timestamp
    same_second = [p.name for p, i in zip(paths, infos, strict=True) if i.timestamp == second]
    expected = [f"blockchain_{second}.db"] + [
        f"blockchain_{second}_{n}.db" for n in range(2, len(same_second) + 1)
    ]
    assert same_second == expected
    for path, info in zip(paths, infos, strict=True):
        assert sha3_file(path) == info.checksum == read_meta(path).checksum
        assert read_meta(path).backup_path == str(path)
    assert len(list_backups(backups)) == len(infos)


def test_existing_files_are_never_overwritten(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    now = int(time.time())
    squatters = {}
    for second in range(now, now + 30):  # whatever second the backup lands in
        for suffix in ("", "_2"):
            path = backups / f"blockchain_{second}{suffix}.db"
            squatters[path] = f"someone else's file {second}{suffix}".encode()
            path.write_bytes(squatters[path])

    info = create_backup(ledger, backups)

    assert now <= info.timestamp < now + 30
    assert Path(info.backup_path).name == f"blockchain_{info.timestamp}_3.db"
    for path, content in squatters.items():
        assert path.read_bytes() == content
        assert not Path(f"{path}.meta").exists()
    assert sha3_file(Path(info.backup_path)) == info.checksum
    assert hidden_leftovers(backups) == []


# --------------------------------------------------------------------------- schemas and layouts

RICH_SCHEMA = (
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " balance INTEGER NOT NULL DEFAULT 0, blob BLOB, ratio REAL)",
    "CREATE TABLE edges (a INTEGER NOT NULL, b INTEGER NOT NULL, w REAL,"
    " PRIMARY KEY (a, b)) WITHOUT ROWID",
    "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, account INTEGER, delta INTEGER)",
    'CREATE TABLE "odd ""quoted"" table" ("x y" TEXT)',
    "CREATE INDEX idx_accounts_balance ON accounts(balance DESC)",
    "CREATE INDEX idx_edges_b ON edges(b) WHERE w > 0.5",
    "CREATE VIEW rich AS SELECT name, balance FROM accounts WHERE balance > 4000",
    "CREATE TRIGGER trg_audit AFTER UPDATE OF balance ON accounts BEGIN"
    " INSERT INTO audit (account, delta) VALUES (NEW.id, NEW.balance - OLD.balance); END",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)"
    " INSERT INTO accounts (name, balance, blob, ratio)"
    " SELECT 'acct-' || i, i * 7 % 5000, randomblob(i % 1500), i / 3.0 FROM n",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)"
    " INSERT INTO edges SELECT i, (i * 31) % 1500, (i % 10) / 10.0 FROM n",
    "UPDATE accounts SET balance = balance + 1 WHERE id % 3 = 0",
    "DELETE FROM accounts WHERE id % 11 = 0",
    """INSERT INTO "odd ""quoted"" table" VALUES ('a'), (NULL), (x'00ff')""",
)


@pytest.mark.parametrize(
    ("page_size", "journal_mode"),
    [(1024, "delete"), (1024, "wal"), (65536, "delete"), (65536, "wal")],
)
def test_rich_schema_and_page_sizes_back_up_exactly(
    tmp_path: Path, page_size: int, journal_mode: str
) -> None:
    source = make_database(
        tmp_path / "rich.db", RICH_SCHEMA, page_size=page_size, journal_mode=journal_mode
    )
    assert query(source, "PRAGMA page_size") == [(page_size,)]
    source_bytes = sha3_file(source)

    info = create_backup(source, tmp_path / "backups")
    path = Path(info.backup_path)

    assert content_digest(path) == content_digest(source)
    assert query(path, "SELECT * FROM sqlite_sequence") == query(
        source, "SELECT * FROM sqlite_sequence"
    )
    assert query(path, "SELECT count(*) FROM audit")[0][0] == 500  # the trigger fired
    assert query(path, "PRAGMA page_size") == [(page_size,)]
    assert info.page_size == page_size
    assert info.row_counts == source_row_counts(source)
    assert info.row_counts['odd "quoted" table'] == 3
    assert info.metadata["source_journal_mode"] == journal_mode
    header = path.read_bytes()[:20]
    assert (header[18], header[19]) == (1, 1)
    assert integrity(path) == ["ok"]
    assert verify_file(path).ok
    assert sha3_file(source) == source_bytes


def test_committed_but_uncheckpointed_wal_frames_are_in_the_backup(
    ledger: Path, tmp_path: Path
) -> None:
    with closing(sqlite3.connect(ledger, isolation_level=None)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE late (x)")
        writer.execute("INSERT INTO late VALUES (1), (2), (3)")
        writer.execute("DELETE FROM transaction_parents WHERE child_id > 250")
        writer.execute("DELETE FROM transactions WHERE id > 250")
        assert Path(f"{ledger}-wal").stat().st_size > 0
        info = create_backup(ledger, tmp_path / "backups")
        expected = content_digest(ledger)
    path = Path(info.backup_path)
    assert content_digest(path) == expected
    assert info.total_transactions == 250
    assert info.row_counts["late"] == 3


def test_database_without_ledger_tables_backs_up_with_zero_totals_and_warnings(
    tmp_path: Path,
) -> None:
    source = make_database(
        tmp_path / "other.db", ["CREATE TABLE things (x)", "INSERT INTO things VALUES (1), (2)"]
    )
    info = create_backup(source, tmp_path / "backups")
    document = read_meta_json(Path(info.backup_path))
    assert (document["total_transactions"], document["total_nodes"]) == (0, 0)
    warnings = document["warnings"]
    assert len(warnings) == 2
    assert "'transactions'" in warnings[0] and "'nodes'" in warnings[1]
    assert document["row_counts"] == {"things": 2}
    assert Path(info.backup_path).name.startswith("other_")
    assert verify_file(Path(info.backup_path)).ok


def test_empty_database_file_backs_up(tmp_path: Path) -> None:
    source = tmp_path / "empty.db"
    source.touch()  # a zero-byte file is a valid, empty SQLite database
    info = create_backup(source, tmp_path / "backups")
    path = Path(info.backup_path)
    assert info.row_counts == {}
    assert verify_file(path).ok
    assert source.stat().st_size == 0


# --------------------------------------------------------------------------- errors


def test_missing_database_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    backups = tmp_path / "backups"
    with pytest.raises(DatabaseNotFound) as caught:
        create_backup(missing, backups)
    assert caught.value.exit_code == 3
    assert str(missing) in caught.value.message
    assert caught.value.hint
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [random.Random(1).randbytes(64 * 1024), b"hello, not a database\n" * 40],
    ids=["random-bytes", "text"],
)
def test_non_sqlite_file_is_refused(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "random.db"
    source.write_bytes(content)
    backups = tmp_path / "backups"
    with pytest.raises(NotASQLiteDatabase) as caught:
        create_backup(source, backups)
    assert caught.value.exit_code == 3
    assert "random.db" in caught.value.message
    assert source.read_bytes() == content
    assert not Path(f"{source}-journal").exists() and not Path(f"{source}-wal").exists()
    assert list_backups(backups) == []
    assert visible_files(backups) == [] and hidden_leftovers(backups) == []


def test_directory_as_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(NotASQLiteDatabase):
        create_backup(tmp_path / "dir.db", tmp_path / "backups")
    assert not (tmp_path / "backups").exists()


def _assert_storage_refusal(ledger: Path, backup_dir: Path) -> None:
    before = sha3_file(ledger)
    siblings = files_with_bytes(ledger.parent)
    with pytest.raises(StorageError) as caught:
        create_backup(ledger, backup_dir)
    err = caught.value
    assert err.exit_code == 6
    assert str(backup_dir) in err.message
    assert err.hint
    assert sha3_file(ledger) == before
    assert files_with_bytes(ledger.parent) == siblings


def test_backup_dir_that_is_a_regular_file(ledger: Path, tmp_path: Path) -> None:
    target = tmp_path / "backups"
    target.write_bytes(b"I am a file, not a directory")
    _assert_storage_refusal(ledger, target)
    assert target.read_bytes() == b"I am a file, not a directory"


def test_backup_dir_whose_parent_is_a_regular_file(ledger: Path, tmp_path: Path) -> None:
    parent = tmp_path / "not-a-dir"
    parent.write_bytes(b"x")
    _assert_storage_refusal(ledger, parent / "backups")
    assert parent.read_bytes() == b"x"


def test_read_only_backup_dir(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    backups.chmod(0o500)
    try:
        if os.access(backups, os.W_OK):
            pytest.skip("this user (root) can write to a 0o500 directory")
        _assert_storage_refusal(ledger, backups)
        assert visible_files(backups) == []
    finally:
        backups.chmod(0o700)


@pytest.mark.parametrize(
    "name",
    ["../x", "a/b", "/abs", ".hidden", "x y", "a..b", "-dash", "x" * 102, "name\n", "tab\t"],
)
def test_invalid_name_is_a_config_error(ledger: Path, tmp_path: Path, name: str) -> None:
    before = sha3_file(ledger)
    backups = tmp_path / "backups"
    with pytest.raises(ConfigError) as caught:
        create_backup(ledger, backups, name=name)
    assert caught.value.exit_code == 2
    assert repr(name) in caught.value.message
    assert not backups.exists()
    assert not (tmp_path / "x").exists()
    assert sha3_file(ledger) == before


def test_valid_custom_name(ledger: Path, tmp_path: Path) -> None:
    info = create_backup(ledger, tmp_path / "backups", name="node-1.main_db")
    assert re.fullmatch(r"node-1\.main_db_\d+\.db", Path(info.backup_path).name)


def test_compressed_full_backup_is_one_zstd_frame_of_the_plain_backup(
    ledger: Path, tmp_path: Path
) -> None:
    info = create_backup(ledger, tmp_path / "backups", compression=True)
    stored = Path(info.backup_path)
    assert stored.name.endswith(".db.zst") and info.compression_enabled
    assert info.checksum == hashlib.sha3_256(stored.read_bytes()).hexdigest()
    plain = tmp_path / "plain.db"
    plain.write_bytes(zstandard.ZstdDecompressor().decompress(stored.read_bytes()))
    with closing(sqlite3.connect(plain)) as restored, closing(sqlite3.connect(ledger)) as live:
        assert database_digest(restored) == database_digest(live)


def test_writer_holding_an_exclusive_lock_makes_backup_busy(tmp_path: Path) -> None:
    source = make_database(
        tmp_path / "rollback.db", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"]
    )
    backups = tmp_path / "backups"
    with closing(sqlite3.connect(source, isolation_level=None)) as writer:
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("INSERT INTO t VALUES (2)")
        started = time.monotonic()
        with pytest.raises(DatabaseLocked) as caught:
            create_backup(source, backups, busy_timeout=0.3)
        waited = time.monotonic() - started
        writer.execute("COMMIT")
    assert caught.value.exit_code == 5 and caught.value.retryable
    assert caught.value.hint
    assert 0.25 <= waited < 10
    assert visible_files(backups) == [] and hidden_leftovers(backups) == []
    info = create_backup(source, backups)
    assert info.row_counts == {"t": 2}


def test_uncommitted_wal_writes_are_not_in_the_backup(ledger: Path, tmp_path: Path) -> None:
    expected = content_digest(ledger)
    with closing(sqlite3.connect(ledger, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM transaction_parents")
        writer.execute("CREATE TABLE uncommitted (x)")
        info = create_backup(ledger, tmp_path / "backups", busy_timeout=0.5)  # not blocked
        writer.execute("ROLLBACK")
    assert content_digest(Path(info.backup_path)) == expected
    assert "uncommitted" not in info.row_counts


def test_backup_refused_while_this_process_holds_the_database_lock(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    before = sha3_file(ledger)
    with lock.hold(ledger, "restore"), pytest.raises(OperationInProgress) as caught:
        create_backup(ledger, backups)
    err = caught.value
    assert err.exit_code == 5
    assert err.retryable is True
    assert f"pid {os.getpid()}, restore since" in err.message
    assert str(ledger) in err.message
    assert err.hint
    assert list_backups(backups) == [] and hidden_leftovers(backups) == []
    assert sha3_file(ledger) == before

    info = create_backup(ledger, backups)  # released: works again
    assert verify_file(Path(info.backup_path)).ok


def test_backup_refused_while_cleanup_holds_the_backup_directory(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    with lock.hold(backups, "cleanup"):
        with pytest.raises(OperationInProgress) as caught:
            create_backup(ledger, backups)
        assert "cleanup" in caught.value.message
    assert visible_files(backups) == []
    create_backup(ledger, backups)


def test_backups_share_the_directory_lock(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    with lock.hold(backups, "backup", shared=True):  # another database's backup in progress
        info = create_backup(ledger, backups)
    assert Path(info.backup_path).exists()
