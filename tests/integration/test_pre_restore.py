"""Pre-restore backups stay bounded: a retried restore reuses its copy, every restore keeps
the newest PRE_RESTORE_BACKUP_COUNT, `list` shows them, cleanup and prune apply the same rule
without letting them count as (or displace) backups of the directory.

Integration half; the tests that need no server or child process are in
tests/unit/test_pre_restore.py."""

from __future__ import annotations

import json
from pathlib import Path

from _helpers import add_odd_transactions, write_odd_ledger_config
from _shared.pre_restore import _copies, _leftovers
from conftest import CliRunner

from dagvault.catalog import PRE_RESTORE
from dagvault.meta import meta_path


def test_cli_restores_list_cleanup_and_prune_bound_pre_restore_copies(
    odd_ledger: Path, tmp_path: Path, cli: CliRunner
) -> None:
    config = write_odd_ledger_config(tmp_path, restore={"pre_restore_keep": 2})
    backups = tmp_path / "backups"
    common = ["--config", str(config), "--db", str(odd_ledger)]
    taken = cli("backup", *common, "--backup-dir", str(backups), "--no-quality")
    assert taken.returncode == 0, taken.stderr
    [backup] = backups.glob("*.db")
    for _ in range(3):
        add_odd_transactions(odd_ledger, 2)
        restored = cli("restore", str(backup), *common)
        assert restored.returncode == 0, restored.stderr
        assert "Traceback" not in restored.stderr and "ERROR" not in restored.stderr
    assert len(_copies(odd_ledger)) == 2

    listed = cli("list", *common, "--backup-dir", str(backups), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["kind"] for r in rows) == ["backup", PRE_RESTORE, PRE_RESTORE]
    assert {Path(r["backup_path"]).name for r in rows if r["kind"] == PRE_RESTORE} == set(
        _copies(odd_ledger)
    )
    table = cli("list", *common, "--backup-dir", str(backups))
    assert table.stdout.count("(pre-restore)") == 2, table.stdout

    env = {"PRE_RESTORE_BACKUP_COUNT": "1"}  # the env var beats the config file
    cleaned = cli("cleanup", *common, "--backup-dir", str(backups), "--keep", "1", env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert len(_copies(odd_ledger)) == 1
    assert backup.exists() and meta_path(backup).exists()
    assert len(_leftovers(odd_ledger)) == 2
