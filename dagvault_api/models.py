"""Request and response bodies (the documented ones, plus dagvault's options; docs/http-api.md).

Unknown fields are refused (a typo such as ``backup_pth`` must not silently back up into
the default place); every string is bounded.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dagvault.config import EXPORT_FORMATS
from dagvault_api.paths import MAX_PATH_CHARS, encodable

# The documented spellings; a request may use any case ("full", "FULL").
BackupType = Literal["Full", "Incremental", "Differential"]
ALLOW_DECREASE = (
    "accept fewer transactions than the baseline (the previous good backup, or a restore "
    "or import since); DAGVAULT_ALLOW_DECREASE if unset"
)
ExportFormat = Literal[EXPORT_FORMATS]  # type: ignore[valid-type]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _utf8_text(cls, value: Any) -> Any:
        """JSON can carry lone surrogates; no file name, table name or log line can."""
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and not encodable(text):
                raise ValueError("must be valid Unicode text (no lone surrogates)")
        return value


class BackupRequest(_Request):
    backup_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Directory and name prefix inside BACKUP_DIR ('./backups/blockchain' "
        "writes ./backups/blockchain_<unix-seconds>.db); a directory or nothing: "
        "BACKUP_DIR with the database's name.",
        examples=["./backups/blockchain"],
    )
    description: str = Field(default="", max_length=1000)
    backup_type: BackupType = Field(
        default="Full", description="Full, Incremental or Differential, in any case"
    )
    compress: bool | None = Field(default=None, description="BACKUP_COMPRESSION_ENABLED if unset")
    verify: bool = Field(default=True, description="integrity check right after the backup")
    quality: bool = Field(default=True, description="run the data-quality gate (GX)")
    allow_decrease: bool | None = Field(default=None, description=ALLOW_DECREASE)

    @field_validator("backup_type", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.capitalize() if isinstance(value, str) else value


class RestoreRequest(_Request):
    backup_path: str = Field(min_length=1, max_length=MAX_PATH_CHARS)
    create_pre_restore_backup: bool | None = Field(
        default=None, description="CREATE_PRE_RESTORE_BACKUP if unset"
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


class ExportRequest(_Request):
    export_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Name prefix inside EXPORT_DIR: every request writes a new export "
        "('./exports/blockchain' with format sql writes ./exports/blockchain_<unix-seconds>.sql, "
        "with json/csv/parquet the dataset directory ./exports/blockchain_<unix-seconds>/); "
        "a directory that is not an export, or nothing: <database>_<unix-seconds> in it.",
    )
    format: ExportFormat | None = Field(default=None, description="DEFAULT_EXPORT_FORMAT if unset")
    backup_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="export this backup (inside BACKUP_DIR) instead of the live database",
    )
    tables: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    quality: bool = True


class ImportRequest(_Request):
    sql_path: str = Field(min_length=1, max_length=MAX_PATH_CHARS, description="inside EXPORT_DIR")
    create_pre_import_backup: bool | None = Field(
        default=None, description="CREATE_PRE_RESTORE_BACKUP if unset"
    )


class VerifyRequest(_Request):
    backup_path: str | None = Field(default=None, min_length=1, max_length=MAX_PATH_CHARS)
    all: bool = Field(default=False, description="every backup of BACKUP_DIR")
    quick: bool = False
    quality: bool = False
    allow_decrease: bool | None = Field(default=None, description=ALLOW_DECREASE)

    @model_validator(mode="after")
    def _one_target(self) -> VerifyRequest:
        if self.all == (self.backup_path is not None):
            raise ValueError("give either backup_path or all=true")
        return self


class CleanupRequest(_Request):
    keep: int | None = Field(
        default=None, ge=1, le=1_000_000, description="BACKUP_RETENTION_COUNT if unset"
    )
    dry_run: bool = False


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


class BackupData(OperationData):
    backup_path: str


class RestoreData(OperationData):
    backup_path: str
    create_pre_restore_backup: bool
    allow_schema_change: bool = False
    allow_gate_failed: bool = False


class ExportData(OperationData):
    export_path: str
    format: str


class BackupEntry(BaseModel):
    """BackupInfo (typed as documented) plus dagvault's fields (docs/backup-format.md)."""

    timestamp: int
    backup_path: str
    database_path: str
    file_size: int
    total_transactions: int
    total_nodes: int
    backup_type: str
    compression_enabled: bool
    checksum: str
    metadata: dict[str, str]
    model_config = ConfigDict(extra="allow")


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
