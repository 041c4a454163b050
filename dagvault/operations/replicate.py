"""Replication's options and result (`dagvault replicate`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, RootModel, field_validator

from dagvault.operations.common import MAX_PATH_CHARS, Options, model_of
from dagvault.storage.offsite.replicate import ReplicationReport
from dagvault.storage.throttle import parse_rate

ReplicaReport = model_of(
    ReplicationReport,
    "ReplicaReport",
    "One target brought up to date: what was copied or skipped, and how far it lags.",
    lag_seconds=(int | None, None),
)


class ReplicateOptions(Options):
    """What a replication can be asked for: `dagvault replicate`'s flags. BACKUP_DIR and
    the key are settings (--backup-dir, --key-file)."""

    targets: list[Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="the targets (URLs); backup.replicas / BACKUP_REPLICAS if unset",
    )
    encrypt: bool | None = Field(
        default=None,
        description="encrypt the copies (AES-256-GCM); BACKUP_ENCRYPTION_ENABLED if unset",
    )
    bandwidth_limit: int | None = Field(
        default=None,
        description="bytes per second the uploads may use on average (10M, 512K: KiB/MiB/"
        "GiB); DAGVAULT_BANDWIDTH_LIMIT if unset, no limit by default",
    )

    @field_validator("bandwidth_limit", mode="before")
    @classmethod
    def _rate(cls, value: object) -> object:
        return None if value is None else parse_rate(value)


class ReplicateResult(RootModel[list[ReplicaReport]]):  # type: ignore[valid-type]
    """One report per target, in the order of the targets. `dagvault replicate --json`
    prints it."""
