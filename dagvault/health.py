"""The node's health as far as dagvault can tell without reading a backup: what the HTTP
API's ``GET /health`` and ``dagvault health`` report (cheap: a few stat calls and the
backups' sidecars)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dagvault import drill, permissions, rpo
from dagvault.config import Settings

# `dagvault health` exits with this when the status is degraded (docs/commands.md: Exit codes).
DEGRADED_EXIT = 8


@dataclass
class Health:
    status: Literal["ok", "degraded"]
    database_present: bool
    warnings: list[str] = field(default_factory=list)
    rpo: rpo.Rpo = field(default_factory=lambda: rpo.Rpo(None, None, False))
    rpo_target_seconds: int = Settings.rpo_target_seconds
    last_drill: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        drilled = self.last_drill
        return {
            "status": self.status,
            "database_present": self.database_present,
            "warnings": list(self.warnings),
            **self.rpo.to_json(),
            "rpo_target_seconds": self.rpo_target_seconds,
            "last_drill": None
            if drilled is None
            else {k: drilled.get(k) for k in ("success", "started_at", "rto_seconds")},
        }


def check_health(
    database: Path,
    backup_dir: Path | None,
    *,
    rpo_target: int = Settings.rpo_target_seconds,
    now: float | None = None,
) -> Health:
    """``degraded`` when anything in ``warnings`` needs the operator: backups readable or
    writable by accounts that cannot read the ledger; changes to the ledger older than
    ``rpo_target`` seconds that no recovery point holds; a failed last restore drill."""
    present = database.is_file()
    warnings = (
        permissions.exposure_warnings(backup_dir, database if present else None)
        if backup_dir is not None
        else []
    )
    measured = rpo.measure(database, backup_dir, now=now)
    if measured.seconds is not None and measured.newest and measured.seconds > rpo_target:
        warnings.append(
            f"RPO {measured.seconds:.0f} s is above the target of {rpo_target} s: the ledger "
            f"changed since the newest recovery point ({measured.newest.iso}); take a backup "
            "(dagvault backup --type incremental)"
        )
    drilled = drill.last_drill(backup_dir)
    if drilled is not None and drilled.get("success") is False:
        warnings.append(
            f"the last restore drill ({drilled.get('started_at')}) failed; run `dagvault "
            "drill` for the details"
        )
    return Health(
        "degraded" if warnings else "ok", present, warnings, measured, rpo_target, drilled
    )
