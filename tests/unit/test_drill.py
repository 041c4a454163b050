"""Restore drills and the measured RPO, in-process on a ledger unlike the sample: a chain of
a full and incremental backups, drilled into scratch files; the live ledger never touched."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from _helpers import ODD_LEDGER_CONFIG, add_odd_transactions, make_odd_ledger

from dagvault import drill, journal, rpo
from dagvault.backup import create_backup
from dagvault.errors import DrillFailed
from dagvault.health import check_health
from dagvault.ledger import LedgerProfile

PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger and its backups: full, then three incrementals with transactions between."""
    (tmp_path / "live").mkdir()
    db = make_odd_ledger(tmp_path / "live" / "node.db", 20, blob_size=3_000)
    backups = tmp_path / "backups"
    create_backup(db, backups, kind="full", profile=PROFILE)
    for _ in range(3):
        add_odd_transactions(db, 5, blob_size=3_000)
        create_backup(db, backups, kind="incremental", profile=PROFILE)
    return db, backups


def _drill(backups: Path, scratch: Path, *, quality: bool = False) -> drill.DrillResult:
    return drill.drill_backups(
        backups,
        key_file=None,
        profile=PROFILE,
        busy_timeout=5.0,
        max_seconds=60.0,
        scratch_root=scratch,
        reports_dir=None,
        quality=quality,
        rng=random.Random(3),
    )


def _journal(backups: Path) -> list[dict[str, object]]:
    lines = journal.journal_path(backups).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_drill_restores_the_newest_and_an_older_point_into_scratch_files(
    chain: tuple[Path, Path], tmp_path: Path
) -> None:
    db, backups = chain
    live_before = db.read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = _drill(backups, scratch)
    assert result.success, result.problems
    newest, older = result.checks
    assert newest.role == drill.NEWEST and older.role == drill.OLDER
    assert newest.backup_type == "Incremental" and newest.transactions == 35
    assert newest.backup_path != older.backup_path
    assert newest.quality_passed is None  # not asked for
    assert result.rto_seconds is not None and result.rto_seconds > 0
    assert list(scratch.iterdir()) == []  # the scratch files are gone
    assert db.read_bytes() == live_before  # the live ledger untouched

    drill.record(backups, result)
    assert drill.last_drill(backups) == json.loads(json.dumps(result.to_json()))
    line = _journal(backups)[-1]
    assert line["operation"] == "drill" and line["outcome"] == journal.SUCCESS
    assert line["seconds"] == round(result.rto_seconds, 3)
    assert [c["role"] for c in line["details"]["checks"]] == ["newest", "older"]  # type: ignore[index]
    # The drill's restores are no restores of the node: the journal counts none.
    assert not any(entry["operation"] == "restore" for entry in _journal(backups))


def test_a_drill_runs_the_quality_gate_on_the_restored_file(tmp_path: Path) -> None:
    db = make_odd_ledger(tmp_path / "node.db", 10, blob_size=1_000)
    create_backup(db, tmp_path / "backups", kind="full", profile=PROFILE)
    result = _drill(tmp_path / "backups", tmp_path, quality=True)
    [only] = result.checks  # one point: nothing older to pick
    assert result.success and only.quality_passed is True and only.gate_seconds is not None


def test_a_damaged_backup_fails_the_drill_and_degrades_health(
    chain: tuple[Path, Path], tmp_path: Path
) -> None:
    db, backups = chain
    newest = max(backups.glob("*.incr"), key=lambda p: p.stat().st_mtime_ns)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    result = _drill(backups, tmp_path)
    assert not result.success
    assert result.checks[0].problem and newest.name in result.problems[0]
    assert result.rto_seconds is None
    drill.record(backups, result)
    assert _journal(backups)[-1]["outcome"] == journal.FAILURE
    error = drill.failure(result.to_json())
    assert isinstance(error, DrillFailed) and error.exit_code == 4
    health = check_health(db, backups, rpo_target=3600)
    assert health.status == "degraded"
    assert any("restore drill" in w for w in health.warnings)


def test_no_recovery_point_is_a_failed_drill(tmp_path: Path) -> None:
    result = _drill(tmp_path, tmp_path)
    assert not result.success and result.checks == []
    assert result.problems == [result.problem] and "No recovery point" in str(result.problem)
    drill.record(tmp_path, result)
    assert drill.last_drill(tmp_path)["success"] is False  # type: ignore[index]
    assert "No recovery point" in drill.failure(result.to_json()).message


def test_rpo_is_zero_while_the_ledger_is_unchanged_and_the_age_once_it_changes(
    tmp_path: Path,
) -> None:
    db = make_odd_ledger(tmp_path / "node.db", 10, blob_size=1_000)
    backups = tmp_path / "backups"
    assert rpo.measure(db, backups).seconds is None  # no recovery point yet
    time.sleep(0.1)  # the ledger's last write lies clearly before the backup
    create_backup(db, backups, kind="full", profile=PROFILE)
    # The node keeps its connection open; an incremental backup checkpoints its WAL, which
    # writes the database file but commits nothing.
    with closing(sqlite3.connect(db)) as node:
        node.execute("SELECT count(*) FROM tx_log").fetchone()
        time.sleep(0.1)
        create_backup(db, backups, kind="incremental", profile=PROFILE)
        assert rpo.measure(db, backups).seconds == 0.0
        assert check_health(db, backups, rpo_target=1).status == "ok"
        add_odd_transactions(db, 1, blob_size=1_000)
        measured = rpo.measure(db, backups, now=time.time() + 120)
    assert measured.changed_since and measured.seconds is not None
    assert 120 <= measured.seconds < 3600
    # Nothing else has the ledger open: the backup's own connection, closing last,
    # checkpoints the WAL into the database file and removes it; that is no change.
    time.sleep(0.1)
    create_backup(db, backups, kind="incremental", profile=PROFILE)
    assert not Path(f"{db}-wal").exists()
    assert rpo.measure(db, backups).seconds == 0.0
    time.sleep(rpo.CLOSE_SLACK_SECONDS + 0.1)  # past the backup's own closing checkpoint
    add_odd_transactions(db, 1, blob_size=1_000)  # opens, commits, closes: no -wal left
    assert rpo.measure(db, backups).changed_since
    late = check_health(db, backups, rpo_target=60, now=time.time() + 120)
    assert late.status == "degraded"
    assert any("RPO" in w for w in late.warnings)
