"""The recovery point objective as it stands now: how much of the ledger's history a failure
this moment would lose (``dagvault_rpo_seconds``, `/health`, `dagvault status`).

It is the age of the newest recovery point (dagvault.recovery) while the ledger has changed
since that point began, and 0 while it has not: an idle ledger loses nothing however old its
newest backup is. "Changed since" is a ``stat`` or two and the file header's two mode bytes,
never a read of the ledger's data: a commit sets the modification time of the file it writes,
the ``-wal`` file in WAL mode, the database file otherwise. So a WAL database has changed when
its ``-wal`` was written after the point's ``created_at`` (taken before its snapshot began);
the checkpoints that copy the WAL into the database file (an incremental backup runs one)
commit nothing and are not counted. Without a ``-wal`` (its last connection checkpointed and
removed it), the database file's time stands in: that errs on the safe side (a checkpoint
counts as a change), a commit never goes unseen. The kernel stamps files with a coarse clock
(a few milliseconds behind ``time.time()``), hence the slack.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagvault.catalog import list_backups
from dagvault.recovery import RecoveryPoint, recovery_points

# Writes stamped this much before a point began still count as after it (the coarse clock).
CLOCK_SLACK_SECONDS = 0.05
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


def written_after(database: Path, moment: float) -> bool:
    """Whether a commit may have reached ``database`` at ``moment`` or later."""
    try:
        with open(database, "rb") as fh:
            wal_mode = fh.read(20)[18:20] == _WAL_VERSIONS
        wal_modified = os.stat(f"{database}-wal").st_mtime_ns if wal_mode else None
    except FileNotFoundError:  # no -wal: checkpointed and removed by its last connection
        wal_modified = None
    modified = wal_modified if wal_modified is not None else database.stat().st_mtime_ns
    return modified / 1e9 >= moment - CLOCK_SLACK_SECONDS


def measure(database: Path, backup_dir: Path | None, *, now: float | None = None) -> Rpo:
    """The RPO of ``database`` backed up into the local ``backup_dir`` (None: a storage
    target, whose listing costs a network round trip; not measured)."""
    if backup_dir is None or not database.is_file():
        return Rpo(None, None, False)
    points = recovery_points(list_backups(backup_dir))
    if not points:
        return Rpo(None, None, False)
    newest = points[-1]
    if not written_after(database, newest.at):
        return Rpo(0.0, newest, False)
    return Rpo(max(0.0, (now if now is not None else time.time()) - newest.at), newest, True)
