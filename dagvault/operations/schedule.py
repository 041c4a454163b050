"""The scheduled backup's options and result (`dagvault schedule`, the backup spec's
schedule_backup)."""

from __future__ import annotations

from pydantic import Field

from dagvault.operations.backup import BackupResult
from dagvault.operations.common import Options, Result, model_of
from dagvault.operations.retention import RetentionResult
from dagvault.schedule import BackupSchedule

ScheduleDocument = model_of(
    BackupSchedule,
    "ScheduleDocument",
    "The backup spec's BackupSchedule: when the last usable backup was taken, when the next "
    "is due.",
)


class ScheduleOptions(Options):
    """What a scheduled backup can be asked for: `dagvault schedule`'s flag, the scheduled
    deployment's parameter. The database, BACKUP_DIR and BACKUP_INTERVAL_HOURS are
    settings (--db, --backup-dir, --interval-hours)."""

    run_if_due: bool = Field(
        default=True, description="take the backup when it is due (else only report)"
    )


class ScheduleResult(Result):
    """The schedule (after the backup, when one was taken), the backup and the cleanup
    that followed it (backup.auto_cleanup). `dagvault schedule --json` prints it."""

    schedule: ScheduleDocument  # type: ignore[valid-type]
    backup: BackupResult | None = None
    cleanup: RetentionResult | None = None
