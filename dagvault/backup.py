"""Full backups (the description's ``create_backup``).

``<DIR>/<NAME>_<unix-seconds>.db`` plus ``<file>.meta``. The data file is written
to a hidden temp name, fsynced while its SHA3-256 is computed, published without
ever overwriting (link(2)), and only then is the sidecar written: a backup without
a valid sidecar is never reported valid.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from dagvault import db, events, lock
from dagvault.checksum import sha3_256_file
from dagvault.errors import ConfigError, DagvaultError, storage_error
from dagvault.fsio import discard, ensure_dir, publish, remove_stale_temp_files, temp_path
from dagvault.ledger import LedgerProfile
from dagvault.meta import BackupInfo, write_meta
from dagvault.snapshot import snapshot_to_file

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")


def validate_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"Invalid backup name {name!r}",
            "Use letters, digits, '.', '_' and '-' only (no path separators), "
            "at most 101 characters, starting with a letter or digit.",
        )
    return name


def numbered_paths(directory: Path, template: str) -> Callable[[int], Iterator[Path]]:
    """Paths from ``template`` ({ts}: unix seconds, {n}: "" then "_2", "_3", …) so that
    several backups within one second get distinct names."""

    def candidates(timestamp: int) -> Iterator[Path]:
        yield directory / template.format(ts=timestamp, n="")
        for n in range(2, 10_000):
            yield directory / template.format(ts=timestamp, n=f"_{n}")

    return candidates


def _now() -> tuple[int, str]:
    now = datetime.now(UTC)
    return int(now.timestamp()), now.isoformat(timespec="microseconds")


def write_backup(
    source: sqlite3.Connection,
    source_path: Path,
    destinations: Callable[[int], Iterator[Path]],
    *,
    description: str,
    profile: LedgerProfile,
    stage: str = "backup",
) -> tuple[Path, BackupInfo]:
    """Snapshot ``source`` into the first free path of ``destinations(timestamp)``."""
    started = time.monotonic()
    timestamp, created_at = _now()
    paths = destinations(timestamp)
    final = next(paths)
    temp = temp_path(final)
    published = False
    try:
        snap = snapshot_to_file(source, temp, stage=stage)
        checksum = sha3_256_file(temp, fsync=True)
        size = temp.stat().st_size
        while True:
            try:
                publish(temp, final)
                published = True
                break
            except FileExistsError:
                final = next(paths)  # two backups in one second: take the next free name
        total_tx, total_nodes, warnings = profile.totals(snap.row_counts)
        info = BackupInfo(
            timestamp=timestamp,
            backup_path=str(final),
            database_path=str(source_path.resolve()),
            file_size=size,
            total_transactions=total_tx,
            total_nodes=total_nodes,
            backup_type="Full",
            compression_enabled=False,
            checksum=checksum,
            created_at=created_at,
            metadata={
                "description": description,
                "row_counts": snap.row_counts,
                "sqlite_version": snap.sqlite_version,
                "page_size": snap.page_size,
                "page_count": snap.page_count,
                "source_journal_mode": snap.source_journal_mode,
                "duration_seconds": round(time.monotonic() - started, 3),
                "hostname": socket.gethostname(),
                "warnings": warnings,
            },
        )
        write_meta(final, info)
        return final, info
    except BaseException as exc:
        if published:
            discard(final)  # a data file without its sidecar must not linger
        if isinstance(exc, DagvaultError):
            events.backup_failed(exc.message)
        elif isinstance(exc, OSError):
            err = storage_error(exc, "writing backup", str(final))
            events.backup_failed(err.message)
            raise err from exc
        raise
    finally:
        for suffix in ("", *_SQLITE_COMPANIONS):
            discard(Path(f"{temp}{suffix}"))


def create_backup(
    db_path: Path,
    backup_dir: Path,
    *,
    name: str | None = None,
    description: str = "",
    profile: LedgerProfile | None = None,
    busy_timeout: float = 30.0,
    compression: bool = False,
) -> BackupInfo:
    """Take a full backup of ``db_path`` into ``backup_dir`` and return its BackupInfo."""
    if compression:
        raise ConfigError(
            "Compressed backups (BACKUP_COMPRESSION_ENABLED=true) are not available in this "
            "version of dagvault",
            "Set BACKUP_COMPRESSION_ENABLED=false (or backup.compression_enabled in the "
            "config file) to take uncompressed backups.",
        )
    name = validate_name(name or db_path.stem or "backup")
    db.require_file(db_path)
    ensure_dir(backup_dir)
    with lock.database_and_directory(db_path, backup_dir, "backup"):
        remove_stale_temp_files(backup_dir)
        with db.connection(db_path, mode="rw", busy_timeout=busy_timeout) as source:
            final, info = write_backup(
                source,
                db_path,
                numbered_paths(backup_dir, name + "_{ts}{n}.db"),
                description=description,
                profile=profile or LedgerProfile(),
            )
    events.backup_created(final)
    return info
