"""The recovery point objective as it stands now: how much of the ledger's history a failure
this moment would lose (``dagvault_rpo_seconds``, `/health`, `dagvault status`).

It is the age of the newest recovery point (dagvault.recovery) while the ledger has changed
since that point began, and 0 while it has not: an idle ledger loses nothing however old its
newest backup is. "Changed since" is a ``stat`` or two and the file header's two mode bytes,
never a read of the ledger's data: a commit sets the modification time of the file it writes,
the ``-wal`` file in WAL mode, the database file otherwise.

- WAL mode, ``-wal`` present (a node holds the database open): changed when the ``-wal`` was
  written after the point's ``created_at`` (taken before its snapshot began). Checkpoints,
  which copy the WAL into the database file (an incremental backup runs one), commit nothing
  and do not count. Exact.
- WAL mode, no ``-wal``: the last connection to close checkpointed it into the database file
  and removed it, and when nothing else has the ledger open that last connection is the
  backup's own, just after the backup. So the database file counts as changed when written
  more than ``CLOSE_SLACK_SECONDS`` after the backup ended (``created_at`` plus its
  ``duration_seconds``). Blind spot: a writer that opens the ledger, commits and closes all
  during the backup or that second after it, and never writes again, is seen at its next
  commit only.
- Rollback journal: changed when the database file was written after ``created_at``. Exact.

The kernel stamps files with a coarse clock (a few milliseconds behind ``time.time()``),
hence ``CLOCK_SLACK_SECONDS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagvault.catalog import CatalogEntry, list_backups
from dagvault.recovery import RecoveryPoint, recovery_points

# Writes stamped this much before a point began still count as after it (the coarse clock).
CLOCK_SLACK_SECONDS = 0.05
# The backup's own connection closes (and checkpoints) within this after the backup ends.
CLOSE_SLACK_SECONDS = 1.0
_WAL_VERSIONS = b"\x02\x02"  # the header's file format write/read versions of WAL mode


@dataclass(frozen=True)
class Rpo:
    seconds: float | None  # None: no recovery point (or no ledger), nothing to measure
    newest: RecoveryPoint | None
    changed_since: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "rpo_seconds": None if self.seconds is None else round(self.seconds, 3),
            "newest_recovery_point": self.newest.iso if self.newest else None,
            "changed_since_newest": self.changed_since,
        }


def changed_since(database: Path, point: RecoveryPoint) -> bool:
    """Whether a commit may have reached ``database`` after ``point`` began."""
    with open(database, "rb") as fh:
        wal_mode = fh.read(20)[18:20] == _WAL_VERSIONS
    begun = point.at
    try:
        if wal_mode:
            return _modified(Path(f"{database}-wal")) >= begun - CLOCK_SLACK_SECONDS
    except FileNotFoundError:  # checkpointed and removed by its last connection
        info = point.backup.info
        took = float(info.metadata.get("duration_seconds", 0)) if info else 0.0
        begun += took + CLOSE_SLACK_SECONDS
    return _modified(database) >= begun - CLOCK_SLACK_SECONDS


def _modified(path: Path) -> float:
    return path.stat().st_mtime_ns / 1e9


def measure(
    database: Path,
    backup_dir: Path | None,
    *,
    now: float | None = None,
    entries: list[CatalogEntry] | None = None,
) -> Rpo:
    """The RPO of ``database`` backed up into the local ``backup_dir`` (None: a storage
    target, whose listing costs a network round trip; not measured). ``entries``: its
    listing, when the caller has it already."""
    if backup_dir is None or not database.is_file():
        return Rpo(None, None, False)
    points = recovery_points(entries if entries is not None else list_backups(backup_dir))
    if not points:
        return Rpo(None, None, False)
    newest = points[-1]
    if not changed_since(database, newest):
        return Rpo(0.0, newest, False)
    return Rpo(max(0.0, (now if now is not None else time.time()) - newest.at), newest, True)
