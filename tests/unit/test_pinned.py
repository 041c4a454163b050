"""Deltas read from the live file in place (dagvault.pinned): the pinned state holds while
the node commits and checkpoints, and where no state can be pinned the copy is taken.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_pinned.py."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest
from _helpers import content_digest, integrity, make_database, query
from _shared.pinned import restored_digest

from dagvault import pages
from dagvault.backup import create_backup
from dagvault.pinned import PinnedRead, holds_read_lock_0
from dagvault.sample import create_sample_ledger


def wal_database(path: Path, rows: int = 300) -> Path:
    make_database(
        path,
        [
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
            "INSERT INTO t SELECT i, randomblob(900) FROM n",
        ],
        journal_mode="wal",
    )
    return path


def test_read_lock_0_is_seen_only_when_the_wal_is_backfilled(tmp_path: Path) -> None:
    db = wal_database(tmp_path / "live.db")
    shm = Path(f"{db}-shm")
    with (
        closing(sqlite3.connect(db, isolation_level=None)) as writer,
        closing(sqlite3.connect(db, isolation_level=None)) as reader,
    ):
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("INSERT INTO t (v) VALUES (x'00')")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()
        assert not holds_read_lock_0(shm, os.getpid())  # the reader needs the WAL
        reader.execute("COMMIT")

        busy, log, done = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and log == done
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()
        assert holds_read_lock_0(shm, os.getpid())
        assert not holds_read_lock_0(shm, os.getppid())  # another process: not ours
        reader.execute("COMMIT")
        assert not holds_read_lock_0(shm, os.getpid())


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_the_pinned_state_holds_while_the_node_commits_and_checkpoints(
    tmp_path: Path, journal_mode: str
) -> None:
    db = wal_database(tmp_path / "live.db")
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert conn.execute(f"PRAGMA journal_mode={journal_mode}").fetchone()[0] == journal_mode
    before = content_digest(db)
    with PinnedRead(db, busy_timeout=5) as pin:
        assert pin.snapshot is not None, pin.reason
        assert pin.snapshot.row_counts == {"t": 300}
        if journal_mode == "wal":
            # The node rewrites every row and checkpoints; the checkpoint may not write into
            # the file while the helper holds WAL_READ_LOCK(0).
            with closing(sqlite3.connect(db, isolation_level=None)) as node:
                node.execute("UPDATE t SET v = randomblob(900)")
                node.execute("INSERT INTO t (v) SELECT randomblob(900) FROM t")
                busy, log, done = node.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                assert busy == 0 and log > 0 and done < log
        digests = pin.digests()
        count = pin.snapshot.page_count
        image = tmp_path / "image.db"
        pin.write_pages(image, list(range(1, count + 1)))
    assert len(digests) == count * pages.DIGEST_BYTES
    assert pages.page_digests(image, pin.snapshot.page_size) == digests
    assert integrity(image) == ["ok"]
    assert content_digest(image) == before
    # The image opens without WAL companions, like a copy through the backup API.
    assert query(image, "PRAGMA journal_mode") == [("delete",)]
    if journal_mode == "wal":
        assert query(db, "SELECT count(*) FROM t") == [(600,)]


def test_a_delta_of_a_rollback_journal_database_is_read_in_place(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    create_sample_ledger(db, 300, seed=5)
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    backups = tmp_path / "backups"
    full = create_backup(db, backups, kind="full")
    assert full.read_in_place is False  # a full backup is always the copy
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("UPDATE transactions SET fee = fee + 1 WHERE id % 10 = 0")
    delta = create_backup(db, backups, kind="incremental")
    assert delta.backup_type == "Incremental"
    assert delta.read_in_place is True
    assert delta.metadata["source_journal_mode"] == "delete"
    assert 0 < delta.changed_pages < full.page_count
    assert restored_digest(delta.backup_path, tmp_path) == content_digest(db)


@pytest.mark.parametrize("helper", ["exits at once", "cannot start"])
def test_a_failing_page_reader_gives_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper: str
) -> None:
    db = tmp_path / "live.db"
    create_sample_ledger(db, 300, seed=7)
    backups = tmp_path / "backups"
    create_backup(db, backups, kind="full")
    create_sample_ledger(db, 10, seed=8, append=True)
    broken = shutil.which("false") if helper == "exits at once" else str(tmp_path / "missing")
    monkeypatch.setattr(sys, "executable", broken)
    delta = create_backup(db, backups, kind="incremental")
    assert delta.backup_type == "Incremental"
    assert delta.read_in_place is False
    assert sorted(p.name for p in backups.iterdir() if p.name.endswith(".tmp")) == []
    monkeypatch.undo()
    assert restored_digest(delta.backup_path, tmp_path) == content_digest(db)
