"""Request and response bodies (the documented ones, plus dagvault's options; docs/http-api.md).

Unknown fields are refused (a typo such as ``backup_pth`` must not silently back up into
the default place); every string is bounded.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from dagvault.operations import BackupOptions, BackupResult, RestoreResult
from dagvault.operations.common import MAX_PATH_CHARS
from dagvault.operations.export import ExportOptions, ExportResult
from dagvault.operations.restore import ImportResult
from dagvault.operations.retention import RetentionResult
from dagvault.operations.verify import VerifyResult


class BackupRequest(BackupOptions):
    """POST /backup: a backup's options and where it goes inside BACKUP_DIR."""

    backup_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Directory and name prefix inside BACKUP_DIR ('./backups/blockchain' "
        "writes ./backups/blockchain_<unix-seconds>.db); a directory or nothing: "
        "BACKUP_DIR with the database's name.",
        examples=["./backups/blockchain"],
    )


class ExportRequest(ExportOptions):
    """POST /backup/export: an export's options and its name prefix inside EXPORT_DIR."""

    export_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Name prefix inside EXPORT_DIR: every request writes a new export "
        "('./exports/blockchain' with format sql writes ./exports/blockchain_<unix-seconds>.sql, "
        "with json/csv/parquet the dataset directory ./exports/blockchain_<unix-seconds>/); "
        "a directory that is not an export, or nothing: <database>_<unix-seconds> in it.",
    )


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """The response envelope (docs/http-api.md)."""

    success: bool
    data: T | None
    error: str | None
    timestamp: str


class ErrorEnvelope(Envelope[Any]):
    hint: str | None = Field(default=None, description="what to do about the error")


class OperationData(BaseModel):
    success: bool
    message: str
    timestamp: str
    flow_run_id: str | None = Field(description="the Prefect flow run that did the work")
    result: Any = Field(description="the flow's result (BackupInfo, RestoreResult, …)")


class HandoverData(OperationData):
    events: list[str] = Field(description="dagvault's event lines the run logged (📦 ✅ …)")


class ProgressData(BaseModel):
    stage: str = Field(description="what the run does now: backup, restore, export…")
    done: int
    total: int


class BackupData(OperationData):
    backup_path: str
    result: BackupResult


class RestoreData(OperationData):
    result: RestoreResult
    backup_path: str
    at: str | None = None
    create_pre_restore_backup: bool
    allow_schema_change: bool = False
    allow_gate_failed: bool = False


class ExportData(OperationData):
    export_path: str
    format: str
    result: ExportResult


class VerifyData(OperationData):
    result: VerifyResult


class CleanupData(OperationData):
    result: RetentionResult


class ImportData(OperationData):
    result: ImportResult


class Schedule(BaseModel):
    last_backup: int
    next_backup: int
    interval_hours: int
    backup_dir: str
    is_due: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database_present: bool
    warnings: list[str]
    operations_in_progress: int
    uptime_seconds: float
    rpo_seconds: float | None = Field(
        description="age of the newest recovery point while the ledger has changed since "
        "it; 0 while unchanged; null without a recovery point"
    )
    newest_recovery_point: str | None
    changed_since_newest: bool
    rpo_target_seconds: int
    last_drill: dict[str, Any] | None = Field(
        description="the last restore drill: success, started_at, rto_seconds (null: none yet)"
    )
