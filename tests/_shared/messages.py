"""Shared by the unit and the integration half of test_messages.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    ODD_LEDGER_CONFIG,
    read_meta_json,
)

from dagvault.backup import create_backup
from dagvault.ledger import LedgerProfile
from dagvault.meta import meta_path

ODD_PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])


@pytest.fixture
def odd_backup(odd_ledger: Path, tmp_path: Path) -> Path:
    return Path(create_backup(odd_ledger, tmp_path / "backups", profile=ODD_PROFILE).backup_path)


def _edit_sidecar(backup: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change a field by hand, leaving meta_checksum as it was (what an operator or bit
    rot does)."""
    document = read_meta_json(backup)
    change(document)
    meta_path(backup).write_text(json.dumps(document, indent=2))
