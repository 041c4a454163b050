"""When the next backup is due (``schedule_backup``, `dagvault schedule`)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dagvault.storage.backup_store import backup_store


@dataclass(frozen=True)
class BackupSchedule:
    last_backup: int  # unix seconds of the newest usable backup of the database; 0 if none
    next_backup: int
    interval_hours: int
    backup_dir: str
    is_due: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def backup_schedule(
    db_path: Path, backup_dir: Path | str, interval_hours: int, *, now: float | None = None
) -> BackupSchedule:
    """Due when no usable backup of ``db_path`` is younger than ``interval_hours``.

    Backups of other databases sharing the directory, backups without metadata and
    backups that failed verification do not count.
    """
    now = time.time() if now is None else now
    database = str(db_path.resolve())
    last = max(
        (
            e.timestamp
            for e in backup_store(backup_dir).backups()
            if e.info
            and e.info.database_path == database
            and e.info.verification.status != "failed"
        ),
        default=0,
    )
    next_backup = last + interval_hours * 3600 if last else int(now)
    return BackupSchedule(
        last_backup=last,
        next_backup=next_backup,
        interval_hours=interval_hours,
        backup_dir=str(backup_dir),
        is_due=now >= next_backup,
    )
