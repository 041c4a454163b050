"""Dry runs of cleanup and prune are reads, not runs (dagvault.dry_run, docs/service.md):
the command works out the plan itself, without Prefect or the service, and a backup that
is being written does not stop it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import write_odd_ledger_config

from dagvault import lock
from dagvault.backup import create_backup
from dagvault.errors import OperationInProgress
from dagvault.retention import cleanup_old_backups
from dagvault_cli.main import main

pytestmark = pytest.mark.filterwarnings(
    "ignore:Logger 'dagvault' attempted to send logs:UserWarning"
)


@pytest.fixture
def backups(odd_ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three backups of the odd ledger; no service and no Prefect server for the CLI (the
    unit guard refuses the temporary server's process, which a flow run would start)."""
    monkeypatch.setenv("DAGVAULT_STATE_DIR", str(tmp_path / "no-service"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    directory = tmp_path / "bk"
    for _ in range(3):
        create_backup(odd_ledger, directory)
    return directory


def _plan(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    return dict(json.loads(out))


def test_a_dry_run_is_planned_by_the_command_and_removes_nothing(
    backups: Path, odd_ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_odd_ledger_config(tmp_path))
    before = sorted(backups.iterdir())
    common = ["--backup-dir", str(backups), "--db", str(odd_ledger), "--config", config]
    cleanup = _plan(capsys, "cleanup", "--keep", "1", "--dry-run", *common)
    assert cleanup["dry_run"] is True and cleanup["removed_backups"] == 2
    assert cleanup["removed_files"] == [] and cleanup["kept"] == 1
    prune = _plan(capsys, "prune", "--keep-last", "2", "--dry-run", *common)
    assert prune["dry_run"] is True and prune["removed_backups"] == 1
    assert prune["policy"] == {**dict.fromkeys(prune["policy"], None), "keep_last": 2}  # type: ignore[arg-type]
    assert sorted(backups.iterdir()) == before


def test_a_backup_in_progress_does_not_stop_a_plan_but_stops_a_cleanup(backups: Path) -> None:
    with lock.hold(backups, "backup", shared=True):  # as a backup being written holds it
        plan = cleanup_old_backups(backups, 1, dry_run=True)
        assert plan.dry_run and len(plan.plan.remove) == 2
        with pytest.raises(OperationInProgress):
            cleanup_old_backups(backups, 1)
