"""A restore drill's options and result (`dagvault drill`, the dagvault-restore-drill flow)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dagvault.operations.common import Options, Result


class DrillOptions(Options):
    """What a drill can be asked for: `dagvault drill`'s flags, the flow's parameters. The
    backups drilled are BACKUP_DIR's (a setting, resolved by the entry point)."""

    quality: bool = Field(
        default=True, description="run the data-quality gate on each restored file"
    )


class DrillResult(Result):
    """A drill done (dagvault.drill.DrillResult): `dagvault drill --json` prints it."""

    success: bool
    started_at: str
    seconds: float
    rto_seconds: float | None = Field(
        description="seconds from the start of the newest point's restore to a restored file "
        "that passed integrity_check (null: it failed)"
    )
    checks: list[dict[str, Any]]
    problem: str | None = Field(
        default=None, description="why nothing could be drilled (no recovery point)"
    )
