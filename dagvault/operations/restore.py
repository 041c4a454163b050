"""The options and results of a restore and of an import of an SQL dump."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from dagvault import importer
from dagvault.errors import ConfigError
from dagvault.operations.common import MAX_PATH_CHARS, Options, Result, model_of
from dagvault.recovery import parse_time


class RestoreOptions(Options):
    """What a restore can be asked for: `dagvault restore`'s argument and flags, the body of
    POST /backup/restore. Which database is restored, with which key, is a setting
    (--db / DATABASE_PATH, --key-file), resolved by the entry point. Exactly one of
    ``backup_path`` and ``at`` names what is restored."""

    backup_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="the backup to restore (a file, or TARGET_URL/NAME)",
    )
    at: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="point in time: restore the newest recovery point of BACKUP_DIR at or "
        "before this time (ISO 8601, e.g. 2026-12-06T05:50:04Z, no zone = UTC; or unix "
        "seconds), through its chain",
        examples=["2026-12-06T05:50:04Z"],
    )
    create_pre_restore_backup: bool | None = Field(
        default=None,
        description="keep a copy of the current database first; CREATE_PRE_RESTORE_BACKUP if unset",
    )
    allow_schema_change: bool = Field(
        default=False,
        description="restore an unauthenticated backup (no key configured) even though it "
        "adds or changes triggers or views, or drops tables or triggers; audit-logged",
    )
    allow_gate_failed: bool = Field(
        default=False,
        description="restore a backup whose data-quality gate failed (audit-logged; e.g. "
        "into a scratch database to investigate it)",
    )

    @field_validator("at")
    @classmethod
    def _a_time(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_time(value)
            except ConfigError as exc:
                raise ValueError(f"{exc.message}: {exc.hint}") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> RestoreOptions:
        if (self.backup_path is None) == (self.at is None):
            raise ValueError("backup_path: name a backup, or a point in time (at), not both")
        return self


class ImportOptions(Options):
    """What an import of an SQL dump can be asked for: `dagvault import-sql`'s argument and
    flag, the body of POST /backup/import. The database replaced is a setting."""

    sql_path: str = Field(
        min_length=1, max_length=MAX_PATH_CHARS, description="the SQL dump (inside EXPORT_DIR)"
    )
    create_pre_import_backup: bool | None = Field(
        default=None,
        description="keep a copy of the current database first; CREATE_PRE_RESTORE_BACKUP if unset",
    )


class RestoreResult(Result):
    """A restore done: the description's RestoreResult with dagvault's fields.
    `dagvault restore --json` prints it; POST /backup/restore answers it as ``data.result``."""

    success: bool
    backup_info: dict[str, Any]
    restore_timestamp: int
    pre_restore_backup: str | None
    warnings: list[str]
    database_path: str
    duration_seconds: float
    transactions_went_back: int = 0
    recovery_point: str | None = Field(
        default=None,
        description="with ``at``: the moment of the recovery point restored (ISO 8601)",
    )


ImportResult = model_of(
    importer.ImportResult,
    "ImportResult",
    """An SQL dump imported. `dagvault import-sql --json` prints it; POST /backup/import
    answers it as ``data.result``.""",
)
