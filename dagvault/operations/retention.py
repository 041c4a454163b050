"""The options and result of cleanup and prune (retention: which backups go)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dagvault.operations.common import Options, Result

# The rules of PruneOptions, in RetentionPolicy's order: keep_last, keep_hourly, …
RETENTION_RULES = ("last", "hourly", "daily", "weekly", "monthly")


class CleanupOptions(Options):
    """What a cleanup can be asked for: `dagvault cleanup`'s flags, the body of
    POST /backup/cleanup. BACKUP_DIR and DATABASE_PATH are settings."""

    keep: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="backups to keep; BACKUP_RETENTION_COUNT if unset",
    )
    dry_run: bool = Field(default=False, description="print the plan, delete nothing")


class PruneOptions(Options):
    """What a prune can be asked for: `dagvault prune`'s flags, the prune deployment's
    parameters. Rules combine with OR; 0 switches a rule off."""

    keep_last: int | None = Field(default=None, ge=0, description="keep the N newest")
    keep_hourly: int | None = Field(default=None, ge=0, description="newest of each hour")
    keep_daily: int | None = Field(default=None, ge=0, description="newest of each day")
    keep_weekly: int | None = Field(default=None, ge=0, description="newest of each ISO week")
    keep_monthly: int | None = Field(default=None, ge=0, description="newest of each month")
    by_schedule: bool = Field(
        default=False,
        description="with no rule: the newest backup of each of the last "
        "BACKUP_RETENTION_COUNT periods of BACKUP_INTERVAL_HOURS",
    )
    dry_run: bool = Field(default=False, description="print the plan, delete nothing")


class RetentionResult(Result):
    """What a cleanup or prune kept and removed (or would, in a dry run), and why.
    `--json` prints it; POST /backup/cleanup answers it as ``data.result``."""

    dry_run: bool
    kept: int
    removed_backups: int
    files_removed: int
    bytes_freed: int
    removed_files: list[str]
    decisions: list[dict[str, Any]]
    duration_seconds: float
    policy: dict[str, int | None] | None = None
