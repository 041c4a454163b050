"""A consistent, read-only view of what is exported: the live database or a backup.

The live database is read inside one read transaction held for the whole export,
so every table comes from the same committed state while the node keeps writing
(in WAL mode the node is not blocked). A backup is verified (checksum, metadata,
quick_check, row counts) before anything is read from it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagvault.db import open_database, row_counts
from dagvault.fsio import discard, temp_path
from dagvault.verify import needs_rebuild, require_verified


@dataclass(frozen=True)
class Snapshot:
    conn: sqlite3.Connection
    row_counts: dict[str, int]
    description: dict[str, Any]  # what the manifest records as the source


@contextlib.contextmanager
def open_snapshot(
    *,
    database: Path | None = None,
    backup: Path | None = None,
    busy_timeout: float = 30.0,
    backup_location: str | None = None,
    key: bytes | None = None,
) -> Iterator[Snapshot]:
    image: Path | None = None
    if backup is not None:
        # A delta or compressed backup is rebuilt (and proven) into a temp image first.
        image = temp_path(backup.with_name(backup.name + ".export-image"))
        # With a key the backup must be authenticated, as for verify and restore: an
        # export of a forged backup would hand forged rows to analysts (docs/security.md).
        report = require_verified(
            backup,
            "refusing to export it",
            "Export from another backup (`dagvault list`) or from the live database.",
            quick=True,
            image_dest=image,
            key=key,
        )
        assert report.info is not None
        readable = image if needs_rebuild(backup, report.info) else backup
        conn = open_database(readable, mode="ro", what="backup", check_same_thread=False)
        source = {
            "kind": "backup",
            "path": backup_location or str(backup),
            "checksum": report.info.checksum,
            "backup_type": report.info.backup_type,
        }
    else:
        assert database is not None
        conn = open_database(
            database, mode="rw", busy_timeout=busy_timeout, check_same_thread=False
        )
        source = {"kind": "live database", "path": str(database.resolve()), "checksum": None}
    try:
        conn.execute("BEGIN")
        counts = row_counts(conn)  # also pins the snapshot every later read sees
        yield Snapshot(conn, counts, source)
        conn.execute("COMMIT")
    finally:
        conn.close()
        if image is not None:
            discard(image)
