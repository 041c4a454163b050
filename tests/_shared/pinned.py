"""Shared by the unit and the integration half of test_pinned.py."""

from __future__ import annotations

from pathlib import Path

from _helpers import content_digest, integrity

from dagvault.restore import restore_backup


def restored_digest(backup: str, tmp_path: Path) -> dict[str, str]:
    target = tmp_path / f"restored-{Path(backup).name}.db"
    assert restore_backup(Path(backup), target).success
    assert integrity(target) == ["ok"]
    return content_digest(target)
