"""Full backups (dagvault.backup.create_backup): names, sidecar, content, schemas, errors, locks.

Real SQLite files in tmp_path, real child processes for lock holders; nothing of dagvault
is mocked.

Integration half; the tests that need no server or child process are in
tests/unit/test_backup.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _helpers import (
    dead_pid,
    hidden_leftovers,
    sha3_file,
    spawn_python,
)

from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.errors import OperationInProgress


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 command-line shell")
def test_stock_sqlite3_shell_opens_the_backup(ledger: Path, tmp_path: Path) -> None:
    info = create_backup(ledger, tmp_path / "backups")
    path = Path(info.backup_path)
    out = subprocess.run(
        [
            "sqlite3",
            "-readonly",
            str(path),
            "PRAGMA integrity_check; PRAGMA journal_mode; "
            "SELECT count(*) FROM transactions; SELECT count(*) FROM nodes;",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["ok", "delete", "300", "16"]
    assert sha3_file(path) == info.checksum
    assert not Path(f"{path}-wal").exists()


def test_stale_temp_files_are_removed_and_live_ones_kept(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    gone = dead_pid()
    stale = [
        backups / f".blockchain_1700000000.db.{gone}.tmp",
        backups / f".blockchain_1700000000.db.{gone}.tmp-journal",
        backups / f".blockchain_1700000000.db.meta.{gone}.tmp",
    ]
    live = backups / f".blockchain_1700000001.db.{os.getpid()}.tmp"  # its writer still runs
    for path in [*stale, live]:
        path.write_bytes(b"partial")

    info = create_backup(ledger, backups)

    assert not any(path.exists() for path in stale)
    assert hidden_leftovers(backups) == [live.name]
    assert [e.path for e in list_backups(backups)] == [Path(info.backup_path)]


# --------------------------------------------------------------------------- locking

LOCK_HOLDER = """
import sys
from pathlib import Path
from dagvault import lock
with lock.hold(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_backup_refused_while_another_process_holds_the_lock(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    holder = spawn_python(LOCK_HOLDER, str(ledger), "restore")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OperationInProgress) as caught:
            create_backup(ledger, backups)
        assert f"pid {holder.pid}, restore since" in caught.value.message
        assert caught.value.exit_code == 5
    finally:
        holder.kill()  # a holder that dies (even SIGKILL) leaves no stale lock
        holder.communicate(timeout=30)
    info = create_backup(ledger, backups)
    assert Path(info.backup_path).exists()
