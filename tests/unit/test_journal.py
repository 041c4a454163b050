"""The operations journal: every run counts in /metrics, whoever ran it (the CLI, a flow
called directly, the API), and the counts are read incrementally from the journal.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_journal.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dagvault import journal
from dagvault.backup import create_backup
from dagvault.errors import BackupNotFound
from dagvault.retention import cleanup_old_backups
from dagvault.verify import verify_backup


def test_the_core_journals_its_operations_and_the_tally_reads_only_what_is_new(
    odd_ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    tally = journal.Tally(backups)
    assert tally.counts() == {}  # no journal yet
    first = Path(create_backup(odd_ledger, backups).backup_path)
    create_backup(odd_ledger, backups)
    verify_backup(first)
    with pytest.raises(BackupNotFound):
        verify_backup(backups / "missing.db")
    cleanup_old_backups(backups, 1, dry_run=True)  # changes nothing: not an operation
    cleanup_old_backups(backups, 1)
    counts = tally.counts()
    assert counts == {
        ("backup", "success"): 2,
        ("verify", "success"): 1,
        ("verify", "failure"): 1,
        ("cleanup", "success"): 1,
    }
    path = journal.journal_path(backups)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all({"time", "operation", "outcome", "pid", "host"} <= set(e) for e in lines)

    # A writer killed mid-line: the partial line waits; a damaged line is skipped.
    with open(path, "ab") as fh:
        fh.write(b"not json\n" + b'{"operation":"backup","outc')
    assert tally.counts() == counts
    with open(path, "ab") as fh:
        fh.write(b'ome":"success"}\n')
    assert tally.counts()[("backup", "success")] == 3
    # Rotated by hand (a new file): counted again from its start.
    path.unlink()
    journal.record(backups, "prune", journal.SUCCESS)
    assert tally.counts() == {("prune", "success"): 1}
    # The list and the catalog never see the journal.
    assert not any(".dagvault-operations" in p for p in os.listdir(backups) if p[0] != ".")


def test_lines_carry_seconds_and_details_and_old_lines_still_count(tmp_path: Path) -> None:
    journal.record(tmp_path, "drill", journal.SUCCESS, seconds=7.25, details={"rto_seconds": 7.1})
    with journal.operation(tmp_path, "cleanup") as outcome:
        outcome.details = {"bytes_freed": 4096}
    with pytest.raises(RuntimeError), journal.operation(tmp_path, "backup"):
        raise RuntimeError("disk on fire")
    path = journal.journal_path(tmp_path)
    with open(path, "ab") as fh:  # a line an older version wrote
        fh.write(
            b'{"time":"2026-01-01T00:00:00.000+00:00","operation":"backup","outcome":"success"}\n'
        )
    drill, cleanup, failed, old = (json.loads(line) for line in path.read_text().splitlines())
    assert (drill["seconds"], drill["details"]) == (7.25, {"rto_seconds": 7.1})
    assert cleanup["details"] == {"bytes_freed": 4096} and cleanup["seconds"] >= 0
    assert failed["outcome"] == "failure" and "details" not in failed
    assert failed["seconds"] >= 0 and "seconds" not in old
    assert journal.Tally(tmp_path).counts()[("backup", "success")] == 1
