"""A verification's options and result."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from dagvault.operations.backup import ALLOW_DECREASE
from dagvault.operations.common import MAX_PATH_CHARS, Options, Result


class VerifyOptions(Options):
    """What a verification can be asked for: `dagvault verify`'s argument and flags, the
    body of POST /backup/verify (where ``all_backups`` is spelt ``all``), the nightly-verify
    deployment's parameters. BACKUP_DIR and the key are settings."""

    # The HTTP body spells all_backups "all" (the flow's parameter cannot: a builtin).
    model_config = ConfigDict(populate_by_name=True)

    backup_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="the backup to verify (a file, or TARGET_URL/NAME)",
    )
    all_backups: bool = Field(
        default=False, alias="all", description="verify every backup of BACKUP_DIR"
    )
    quick: bool = Field(default=False, description="PRAGMA quick_check (faster, O(N))")
    quality: bool = Field(default=False, description="also run the data-quality gate (GX)")
    allow_decrease: bool | None = Field(default=None, description=ALLOW_DECREASE)

    @model_validator(mode="after")
    def _one_target(self) -> VerifyOptions:
        if self.all_backups == (self.backup_path is not None):
            raise ValueError("give either backup_path or all=true")
        return self


class VerifyResult(Result):
    """Every backup checked and its verdict. `dagvault verify --json` prints it (also when
    a backup fails: ``valid`` false, every report, the error); POST /backup/verify answers
    it as ``data.result`` (a failure there is a 422 whose ``data.reports`` are these)."""

    valid: bool
    reports: list[dict[str, Any]] = Field(
        description="one per backup: backup_path, valid, checks, problems, warnings, "
        "checksum, total_transactions, duration_seconds (and quality, with the gate)"
    )
    error: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_flow(cls, value: Any) -> Any:
        """The verify flow returns the reports of a run that passed."""
        return {"valid": True, "reports": value} if isinstance(value, list) else value
