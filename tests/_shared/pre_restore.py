"""Shared by the unit and the integration half of test_pre_restore.py."""

from __future__ import annotations

from pathlib import Path

from dagvault.catalog import pre_restore_copies


def _copies(db: Path) -> list[str]:
    return sorted(e.path.name for e in pre_restore_copies(db))


def _leftovers(db: Path) -> list[str]:
    """Every pre-restore file beside the database (data, .meta, .pages, hidden temps)."""
    return sorted(p.name for p in db.parent.iterdir() if ".pre_restore_" in p.name)
