"""A fleet backup's options and result (`dagvault fleet-backup`: one ledger per node)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from dagvault.operations.backup import AnyCaseBackupType
from dagvault.operations.common import MAX_PATH_CHARS, Options, Result

Path = Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]


class FleetOptions(Options):
    """What a fleet backup can be asked for: `dagvault fleet-backup`'s arguments and flags.
    BACKUP_DIR (the root of the nodes' directories) is a setting."""

    ledgers: list[Path] | None = Field(
        default=None, description="ledger files (with or instead of glob)"
    )
    glob: Path | None = Field(default=None, description="a pattern matching the ledgers")
    backup_type: AnyCaseBackupType = Field(default="Full", description="each node's backup type")
    quality: bool = Field(default=True, description="run each backup's data-quality gate")
    task_runner: Literal["default", "dask"] = Field(
        default="default", description="default: threads in this process; dask: a Dask cluster"
    )
    dask_address: Path | None = Field(
        default=None, description="the Dask scheduler; without it, a local Dask cluster"
    )


class FleetResult(Result):
    """Every node's outcome. `dagvault fleet-backup --json` prints it (also when a node
    failed: ``ok`` false, every report)."""

    ok: bool = True
    ledgers: int = Field(description="how many ledgers were backed up or tried")
    failed: int
    reports: list[dict[str, Any]] = Field(
        description="one per ledger: ledger, database_path, status, and its backup_path, "
        "backup_type, file_size, total_transactions, or error_type, error, hint, exit_code"
    )
