"""Shared by the unit and the integration half of test_description_types.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from _helpers import (
    ODD_LEDGER_CONFIG,
    add_odd_transactions,
)
from pydantic import BaseModel, ConfigDict, Field

from dagvault.backup import create_backup
from dagvault.ledger import LedgerProfile

U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
I64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class Rust(BaseModel):
    """serde's defaults: exact types (no "1" for 1, no 1 for true), unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="allow")


class BackupInfo(Rust):
    timestamp: I64
    backup_path: str
    database_path: str
    file_size: U64
    total_transactions: U64
    total_nodes: U64
    backup_type: Literal["Full", "Incremental", "Differential"]  # serde's enum spelling
    compression_enabled: bool
    checksum: str
    metadata: dict[str, str]


PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])


def _backups(ledger: Path, directory: Path, compress: bool) -> list[Path]:
    """Full, incremental and differential backups of ``ledger``, each after new rows."""
    taken = []
    for kind in ("full", "incremental", "differential"):
        info = create_backup(ledger, directory, profile=PROFILE, compression=compress, kind=kind)
        assert info.backup_type == kind.capitalize(), info.metadata.get("full_backup_reason")
        taken.append(Path(info.backup_path))
        add_odd_transactions(ledger, 3)
    return taken
