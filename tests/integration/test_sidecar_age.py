"""A sidecar ages with its data file: rewriting it (verify, the quality gate) keeps the
data file's mtime, so the description's age-based sweep removes a backup as a pair."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from _helpers import write_odd_ledger_config
from conftest import CliRunner

from dagvault.meta import meta_path
from dagvault.verify import verify_all

FORTY_DAYS = 40 * 86_400


def _age(path: Path, seconds: int) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _find_delete_older_than_30_days(directory: Path) -> None:
    """The description's automated_backup.sh sweep (both of its lines, and without the
    name filter: whatever is older goes)."""
    subprocess.run(["find", str(directory), "-type", "f", "-mtime", "+30", "-delete"], check=True)


def test_verify_keeps_the_pair_s_age_and_find_removes_both(
    odd_ledger: Path, tmp_path: Path, cli: CliRunner
) -> None:
    config = write_odd_ledger_config(tmp_path)
    backups = tmp_path / "backups"
    for _ in range(2):
        taken = cli(
            "backup", "--config", str(config), "--db", str(odd_ledger), "--backup-dir", str(backups)
        )
        assert taken.returncode == 0, taken.stderr
    old, new = sorted(backups.glob("*.db"))
    for path in (old, meta_path(old)):
        _age(path, FORTY_DAYS)
    # Both ways a sidecar is rewritten: the CLI (a flow run) and the core directly.
    verified = cli("verify", "--config", str(config), "--all", "--backup-dir", str(backups))
    assert verified.returncode == 0, verified.stderr
    verify_all(backups, quick=True)
    assert meta_path(old).stat().st_mtime_ns == old.stat().st_mtime_ns
    assert meta_path(new).stat().st_mtime_ns == new.stat().st_mtime_ns

    _find_delete_older_than_30_days(backups)

    left = sorted(p.name for p in backups.iterdir() if not p.name.startswith("."))
    assert left == sorted(
        p.name for p in (new, meta_path(new), new.with_name(new.name + ".pages")) if p.exists()
    )
    assert not old.exists() and not meta_path(old).exists()
