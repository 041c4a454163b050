"""Shared by the unit and the integration half of test_restore.py."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from _helpers import content_digest as digest_of

from dagvault.backup import create_backup
from dagvault.meta import BackupInfo
from dagvault.sample import create_sample_ledger

Digest = dict[str, str]


def modify_ledger(path: Path) -> None:
    """Deletes, updates, inserts and a new table, in one committed transaction (a restore
    of an earlier backup drops the table: it passes allow_schema_change, see schema_guard)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM transaction_parents WHERE child_id > 250")
        conn.execute("DELETE FROM transactions WHERE id > 250")
        conn.execute("UPDATE transactions SET fee = fee + 7 WHERE id % 3 = 0")
        conn.execute("UPDATE nodes SET stake = stake + 1")
        conn.execute("INSERT INTO nodes VALUES ('intruder', x'00', 1, 0, 0, 1)")
        conn.execute("CREATE TABLE scratch (k INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO scratch (v) VALUES (?)", [("x",)] * 10)
        conn.execute("COMMIT")


def backup_of(db: Path, backup_dir: Path) -> tuple[Path, BackupInfo, Digest]:
    digest = digest_of(db)
    info = create_backup(db, backup_dir)
    return Path(info.backup_path), info, digest


# 8 ------------------------------------------------------------------------------------


def _ledger_with_page_size(path: Path, page_size: int) -> Path:
    create_sample_ledger(path, 200, seed=11, nodes=8)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA page_size").fetchone()[0] == page_size
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    return path
