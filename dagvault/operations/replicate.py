"""A replication's options (the targets, BACKUP_DIR and the key are settings)."""

from __future__ import annotations

from pydantic import Field, field_validator

from dagvault.operations.common import Options
from dagvault.storage.throttle import parse_rate


class ReplicateOptions(Options):
    """What a replication can be asked for: `dagvault replicate`'s flags, a deployment's
    parameters."""

    bandwidth_limit: int | None = Field(
        default=None,
        description="bytes per second the uploads may use on average (10M, 512K: KiB/MiB/"
        "GiB); DAGVAULT_BANDWIDTH_LIMIT if unset, no limit by default",
    )

    @field_validator("bandwidth_limit", mode="before")
    @classmethod
    def _rate(cls, value: object) -> object:
        return None if value is None else parse_rate(value)
