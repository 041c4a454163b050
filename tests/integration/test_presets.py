"""Presets (BACKUP_PRESET) and retention by schedule: the description's production,
development and critical schedules, and why "keep 30" counts days, not files.

Integration half; the tests that need no server or child process are in
tests/unit/test_presets.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.usefixtures("prefect_api_url")
def test_the_prune_flow_applies_the_presets_retention(
    ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagvault.backup import create_backup
    from flows.prune import prune_flow

    backups = tmp_path / "backups"
    first = create_backup(ledger, backups)
    second = create_backup(ledger, backups, kind="incremental")
    monkeypatch.setenv("BACKUP_PRESET", "critical")
    result = prune_flow(by_schedule=True, dry_run=True, backup_dir=str(backups))
    reasons = {Path(d["backup_path"]).name: d["reason"] for d in result["decisions"]}
    assert reasons[Path(second.backup_path).name].startswith("hourly ")
    assert [d["action"] for d in result["decisions"]] == ["keep", "keep"]
    assert Path(first.backup_path).exists()
