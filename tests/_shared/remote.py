"""Shared by the unit and the integration half of test_remote.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagvault.backup import create_backup
from dagvault.sample import create_sample_ledger

KEY = bytes(range(32))


@pytest.fixture
def backups(ledger: Path, tmp_path: Path) -> Path:
    """A local backup directory with a full backup and an incremental on top of it, taken
    with KEY configured (authenticated), as on a node that encrypts its copies with it."""
    directory = tmp_path / "backups"
    create_backup(ledger, directory, key=KEY)
    create_sample_ledger(ledger, 20, seed=8, nodes=16, append=True)
    create_backup(ledger, directory, kind="incremental", key=KEY)
    return directory
