"""The node's health as far as dagvault can tell without reading a backup: what the HTTP
API's ``GET /health`` and ``dagvault health`` report (cheap: a few stat calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dagvault import permissions

# `dagvault health` exits with this when the status is degraded (docs/commands.md: Exit codes).
DEGRADED_EXIT = 8


@dataclass
class Health:
    status: Literal["ok", "degraded"]
    database_present: bool
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "database_present": self.database_present,
            "warnings": list(self.warnings),
        }


def check_health(database: Path, backup_dir: Path | None) -> Health:
    """``degraded`` when anything in ``warnings`` needs the operator (today: backups
    readable or writable by accounts that cannot read the ledger)."""
    present = database.is_file()
    warnings = (
        permissions.exposure_warnings(backup_dir, database if present else None)
        if backup_dir is not None
        else []
    )
    return Health("degraded" if warnings else "ok", present, warnings)
