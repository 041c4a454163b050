"""A plain full backup is integrity-checked while it is hashed (``create_backup(verify=True)``,
as the backup flow takes it): the sidecar records the verdict as ``dagvault verify`` would,
and damage is reported, never recorded as verified."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from _helpers import hidden_leftovers, sha3_file

from dagvault.backup import create_backup
from dagvault.meta import read_meta
from dagvault.verify import verify_backup


def test_a_full_backup_verified_while_written_is_recorded_as_verify_would(
    odd_ledger: Path, tmp_path: Path
) -> None:
    info = create_backup(odd_ledger, tmp_path / "backups", verify=True)

    path = Path(info.backup_path)
    stored = read_meta(path)
    assert stored.verification.status == "verified"
    assert stored.verification.method == "integrity_check"
    assert stored.verification.problems == []
    assert stored.checksum == sha3_file(path)  # the one hash pass is of the bytes as stored
    assert hidden_leftovers(tmp_path / "backups") == []
    # A later verify agrees with what was recorded while writing.
    assert verify_backup(path).ok


def test_without_verify_or_for_a_delta_the_backup_stays_unverified(
    odd_ledger: Path, tmp_path: Path
) -> None:
    plain = create_backup(odd_ledger, tmp_path / "backups")
    delta = create_backup(odd_ledger, tmp_path / "backups", kind="incremental", verify=True)
    compressed = create_backup(odd_ledger, tmp_path / "zst", compression=True, verify=True)

    assert delta.backup_type == "Incremental"  # its chain is verified afterwards, by verify
    for info in (plain, delta, compressed):
        assert read_meta(Path(info.backup_path)).verification.status == "unverified"


def _with_inconsistent_index(path: Path) -> Path:
    """A database whose index no longer matches its table: the backup API copies it page for
    page, and only ``integrity_check`` notices."""
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE t (a INTEGER, b INTEGER); CREATE INDEX i ON t(a);")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(n, 1000 - n) for n in range(200)])
    conn.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("UPDATE sqlite_schema SET sql = 'CREATE INDEX i ON t(b)' WHERE name = 'i'")
    conn.close()
    return path


def test_damage_found_while_written_is_recorded_failed_never_verified(tmp_path: Path) -> None:
    source = _with_inconsistent_index(tmp_path / "damaged.db")

    info = create_backup(source, tmp_path / "backups", verify=True)

    stored = read_meta(Path(info.backup_path))
    assert info.verification.status == stored.verification.status == "failed"
    (problem,) = stored.verification.problems
    assert problem.startswith("integrity_check: ") and "missing from index i" in problem
    assert not verify_backup(Path(info.backup_path)).ok  # verify finds the same damage
