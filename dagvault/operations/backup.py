"""A backup's options and result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from dagvault.meta import SpecBackupInfo
from dagvault.operations.common import Options, model_of

# The description's spellings; options take any case ("full", "FULL").
BackupType = Literal["Full", "Incremental", "Differential"]
AnyCaseBackupType = Annotated[
    BackupType, BeforeValidator(lambda v: v.capitalize() if isinstance(v, str) else v)
]
ALLOW_DECREASE = (
    "accept fewer transactions than the baseline (the previous good backup, or a restore "
    "or import since); DAGVAULT_ALLOW_DECREASE if unset"
)


class BackupOptions(Options):
    """What a backup can be asked for: `dagvault backup`'s flags, the body of POST /backup
    (which adds ``backup_path``), a deployment's parameters. Where the backup goes and with
    which key are settings (--backup-dir, --key-file…), resolved by the entry point."""

    description: str = Field(
        default="", max_length=1000, description="free text stored in the .meta file"
    )
    backup_type: AnyCaseBackupType = Field(
        default="Full",
        description="Full; Incremental (pages changed since the newest backup); Differential "
        "(since the newest full); in any case. A delta without a usable base becomes a full "
        "backup.",
    )
    compress: bool | None = Field(
        default=None,
        description="zstd-compress the stored file; BACKUP_COMPRESSION_ENABLED if unset",
    )
    verify: bool = Field(default=True, description="integrity check right after the backup")
    quality: bool = Field(default=True, description="run the data-quality gate (GX)")
    allow_decrease: bool | None = Field(default=None, description=ALLOW_DECREASE)


BackupRecord = model_of(
    SpecBackupInfo,
    "BackupRecord",
    """The description's BackupInfo, typed as it types it, plus dagvault's fields: an entry
    of `dagvault list --json` and GET /backup/list.""",
)


class BackupResult(BackupRecord):  # type: ignore[valid-type,misc]
    """A backup taken, with its verification, quality gate and replicas. `dagvault backup
    --json` prints it; POST /backup answers it as ``data.result``."""

    backup_type: BackupType
    created_at: str
    verification: dict[str, Any]
    quality: dict[str, Any] | None = None
    row_counts: dict[str, int]
    warnings: list[str]
    replicas: list[str] = Field(description="the targets that hold a copy now")
