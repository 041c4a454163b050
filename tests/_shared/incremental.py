"""Shared by the unit and the integration half of test_incremental.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import zstandard

from dagvault.backup import create_backup
from dagvault.meta import BackupInfo
from dagvault.restore import restore_backup

# --------------------------------------------------------------------------- helpers


def take(db: Path, directory: Path, kind: str = "incremental", **kwargs: Any) -> BackupInfo:
    return create_backup(db, directory, kind=kind, **kwargs)


def path_of(info: BackupInfo) -> Path:
    return Path(info.backup_path)


def execute(db: Path, *statements: str, params: Iterable[Any] = ()) -> None:
    """Run ``statements`` in one write transaction (the first one gets ``params``)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        for n, statement in enumerate(statements):
            conn.execute(statement, tuple(params) if n == 0 else ())
        conn.execute("COMMIT")


def restored(backup: Path, directory: Path, *, verify: bool = True) -> Path:
    """Restore ``backup`` into a new file under ``directory`` and return that file."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"restored-{len(list(directory.glob('restored-*.db')))}.db"
    result = restore_backup(backup, target, verify=verify)
    assert result.success
    return target


def plain_bytes(path: Path) -> bytes:
    """The stored file's bytes, decompressed (independently of dagvault) if it is .zst."""
    raw = path.read_bytes()
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw
