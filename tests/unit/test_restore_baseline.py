"""The quality gate after a restore or import: the restored state is the next backups'
baseline, a decrease no restore explains still fails, every refusal names the override of
the interface that shows it, and cleanup never lets a refused backup displace a good one.

Real odd ledgers (its own table names, through ``--config``), the real CLI and API against
the session's Prefect server, real GX gates.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_restore_baseline.py."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from dagvault.backup import create_backup
from dagvault.errors import VerificationError
from dagvault.ledger import LedgerProfile
from dagvault.quality import gate_backup
from dagvault.restore import restore_backup
from dagvault.restores import HISTORY_LIMIT, RestoreEvent, history_path, read_history
from dagvault.restores import record_restore as record
from tests._helpers import (
    ODD_LEDGER_CONFIG,
    add_odd_transactions,
    make_odd_ledger,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Logger 'dagvault' attempted to send logs:UserWarning"
)
PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])


# --------------------------------------------------------------------------- core


def test_a_database_copied_into_place_is_not_explained_by_the_restore(tmp_path: Path) -> None:
    db = make_odd_ledger(tmp_path / "node.db", 40, blob_size=100)
    backups = tmp_path / "backups"

    def gated() -> tuple[Path, set[str]]:
        path = Path(create_backup(db, backups, profile=PROFILE).backup_path)
        return path, {o.name for o in gate_backup(path, PROFILE, reports_dir=None).failures}

    older = Path(create_backup(db, backups, profile=PROFILE).backup_path)
    add_odd_transactions(db, 5, blob_size=100)
    shutil.copyfile(db, tmp_path / "copy-of-45.db")
    add_odd_transactions(db, 5, blob_size=100)
    assert gated()[1] == set()  # 50 transactions
    restore_backup(older, db, profile=PROFILE)  # floor 40 for the restored file

    # Then cp + mv of another file over the database: 45 is above the restore's 40, but
    # this file is not the one dagvault restored, so the previous backup's 50 is the floor.
    os.replace(tmp_path / "copy-of-45.db", db)
    assert gated()[1] == {"transactions_not_decreased"}

    # A real restore is explained, and stays explained after a later good backup exists
    # (verify --quality re-gates old backups).
    restore_backup(older, db, profile=PROFILE)
    after, failures = gated()
    assert failures == set()
    add_odd_transactions(db, 1, blob_size=100)
    assert gated()[1] == set()
    report = gate_backup(after, PROFILE, reports_dir=None)
    assert report.passed, report.problems()


def test_the_restore_history_is_bounded_and_an_edited_one_is_ignored(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    sqlite3.connect(db).close()
    for n in range(HISTORY_LIMIT + 5):
        record(
            db, RestoreEvent(f"2026-01-01T00:00:00.{n:06d}+00:00", f"backup b{n}", n, n + 1, "1:2")
        )
    events = read_history(db)
    assert len(events) == HISTORY_LIMIT and events[-1].source == f"backup b{HISTORY_LIMIT + 4}"
    assert events[-1].went_back == 1

    path = history_path(db)
    document = json.loads(path.read_text())
    document["restores"][-1]["total_transactions"] = 0  # a hand-lowered floor
    path.write_text(json.dumps(document))
    with pytest.raises(VerificationError, match="checksum does not match"):
        read_history(db)
