"""Recovery points and the point chosen for a time (the core of `restore --at`), on a ledger
unlike the sample, with a chain of full and incremental backups."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from _helpers import add_odd_transactions, make_odd_ledger

from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.errors import BackupNotFound, ConfigError
from dagvault.meta import Verification, read_meta, write_meta
from dagvault.recovery import choose, describe_window, iso, parse_time, recovery_points
from dagvault.restore import restore_backup


def tx_count(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM tx_log").fetchone()[0])


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path, list[tuple[float, int]]]:
    """Three backups (full, incremental, incremental) with transactions added between them;
    returns the ledger, the backup dir, and (a moment between backups, the count then)."""
    db = make_odd_ledger(tmp_path / "node.db", 30, blob_size=2_000)
    backups = tmp_path / "backups"
    moments = []
    for kind in ("full", "incremental", "incremental"):
        create_backup(db, backups, kind=kind)
        time.sleep(0.05)
        moments.append((time.time(), tx_count(db)))
        add_odd_transactions(db, 7, blob_size=2_000)
        time.sleep(0.05)
    return db, backups, moments


def test_points_are_the_restorable_backups_oldest_first(
    chain: tuple[Path, Path, list[tuple[float, int]]],
) -> None:
    _, backups, _ = chain
    points = recovery_points(list_backups(backups))
    assert [p.backup.info.backup_type for p in points] == ["Full", "Incremental", "Incremental"]  # type: ignore[union-attr]
    assert [p.at for p in points] == sorted(p.at for p in points)
    assert describe_window(points).endswith("(3 recovery points)")


def test_restore_at_a_time_gives_the_state_of_the_point_before_it(
    chain: tuple[Path, Path, list[tuple[float, int]]], tmp_path: Path
) -> None:
    _, backups, moments = chain
    points = recovery_points(list_backups(backups))
    for index, (moment, count) in enumerate(moments):
        choice = choose(points, moment)
        assert choice.point is points[index]
        scratch = tmp_path / f"scratch-{index}.db"
        restore_backup(choice.point.backup.path, scratch, pre_restore_backup=False)
        assert (
            tx_count(scratch) == count == read_meta(choice.point.backup.path).row_counts["tx_log"]
        )


def test_a_time_outside_the_window_names_the_window(
    chain: tuple[Path, Path, list[tuple[float, int]]],
) -> None:
    _, backups, _ = chain
    points = recovery_points(list_backups(backups))
    with pytest.raises(ConfigError) as before:
        choose(points, points[0].at - 3600)
    assert "before the oldest recovery point" in before.value.message
    assert points[0].iso in before.value.message and points[-1].iso in before.value.message
    with pytest.raises(ConfigError, match="in the future"):
        choose(points, time.time() + 3600)
    later = choose(points, points[-1].at + 120, now=points[-1].at + 600)
    assert later.point is points[-1]
    assert later.warning and "changes made after it are in no backup" in later.warning


def test_failed_backups_and_an_empty_directory_are_not_points(tmp_path: Path) -> None:
    with pytest.raises(BackupNotFound):
        choose(recovery_points(list_backups(tmp_path / "none")), time.time())
    db = make_odd_ledger(tmp_path / "node.db", 10, blob_size=100)
    info = create_backup(db, tmp_path / "b")
    assert len(recovery_points(list_backups(tmp_path / "b"))) == 1
    write_meta(Path(info.backup_path), info.with_verification(Verification(status="failed")))
    assert recovery_points(list_backups(tmp_path / "b")) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1796535904", 1796535904.0),
        ("1796535904.25", 1796535904.25),
        ("2026-12-06T05:50:04Z", 1796536204.0),
        ("2026-12-06T05:50:04", 1796536204.0),  # no zone: UTC
        ("2026-12-06T06:50:04+01:00", 1796536204.0),
    ],
)
def test_times_are_iso_8601_or_unix_seconds(text: str, expected: float) -> None:
    assert parse_time(text) == expected
    assert iso(expected).startswith(time.strftime("%Y-%m-%dT", time.gmtime(expected)))


def test_a_time_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not a time"):
        parse_time("yesterday")
