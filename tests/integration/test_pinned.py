"""Deltas read from the live file in place (dagvault.pinned): the pinned state holds while
the node commits and checkpoints, and where no state can be pinned the copy is taken.

Integration half; the tests that need no server or child process are in
tests/unit/test_pinned.py."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from _helpers import content_digest
from _shared.pinned import restored_digest

from dagvault.backup import create_backup
from dagvault.pinned import PinnedRead
from dagvault.sample import create_sample_ledger


def test_a_reader_holding_an_old_state_makes_the_delta_use_a_copy(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    create_sample_ledger(db, 300, seed=3)
    backups = tmp_path / "backups"
    create_backup(db, backups, kind="full")
    old_reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN'); c.execute('SELECT count(*) FROM transactions').fetchone(); "
            "print('pinned', flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert old_reader.stdout is not None
        assert old_reader.stdout.readline().strip() == "pinned"
        with closing(sqlite3.connect(db, isolation_level=None)) as node:
            node.execute("PRAGMA wal_autocheckpoint=0")
        create_sample_ledger(db, 20, seed=4, append=True)  # frames the old reader keeps
        with PinnedRead(db, busy_timeout=5) as pin:
            assert pin.snapshot is None
            assert "kept committing" in pin.reason
        info = create_backup(db, backups, kind="incremental")
    finally:
        old_reader.communicate("", timeout=30)
    assert info.backup_type == "Incremental"
    assert info.read_in_place is False
    assert restored_digest(info.backup_path, tmp_path) == content_digest(db)
