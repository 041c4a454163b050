"""Pre-restore backups stay bounded: a retried restore reuses its copy, every restore keeps
the newest PRE_RESTORE_BACKUP_COUNT, `list` shows them, cleanup and prune apply the same rule
without letting them count as (or displace) backups of the directory.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_pre_restore.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _helpers import ODD_LEDGER_CONFIG, add_odd_transactions
from _shared.pre_restore import _copies, _leftovers

from dagvault import lock
from dagvault.backup import create_backup
from dagvault.catalog import PRE_RESTORE, list_backups, pre_restore_copies
from dagvault.errors import ConfigError, DatabaseLocked
from dagvault.ledger import LedgerProfile
from dagvault.meta import read_meta
from dagvault.restore import restore_backup
from dagvault.retention import (
    PreRestoreRule,
    RetentionPolicy,
    cleanup_old_backups,
    plan_cleanup,
    plan_pre_restore,
    prune_backups,
)

PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])


def test_a_restore_retried_on_a_busy_database_reuses_its_pre_restore_copy(
    odd_ledger: Path, tmp_path: Path
) -> None:
    backup = Path(create_backup(odd_ledger, tmp_path / "backups", profile=PROFILE).backup_path)
    add_odd_transactions(odd_ledger, 5)
    writer = sqlite3.connect(odd_ledger, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a node's write transaction: the copy cannot commit
    try:
        for _attempt in range(4):  # the task's first try and its three retries
            with pytest.raises(DatabaseLocked):
                restore_backup(backup, odd_ledger, profile=PROFILE, busy_timeout=0.05)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    [copy] = _copies(odd_ledger)
    assert _leftovers(odd_ledger) == [copy, copy + ".meta"]
    # The database is free again and unchanged: the next try restores and keeps that copy.
    result = restore_backup(backup, odd_ledger, profile=PROFILE)
    assert Path(result.pre_restore_backup or "").name == copy
    assert _copies(odd_ledger) == [copy]


def test_restores_keep_the_newest_n_pre_restore_copies_and_their_own(
    odd_ledger: Path, tmp_path: Path
) -> None:
    backup = Path(create_backup(odd_ledger, tmp_path / "backups", profile=PROFILE).backup_path)
    taken, states = [], set()
    for _ in range(4):
        add_odd_transactions(odd_ledger, 2)  # a new state each time: a new copy each time
        result = restore_backup(backup, odd_ledger, profile=PROFILE, pre_restore_keep=2)
        taken.append(Path(result.pre_restore_backup or "").name)
        assert taken[-1] in _copies(odd_ledger)  # the copy of the restore that just ran
        states.add(read_meta(Path(result.pre_restore_backup or "")).checksum)
    # Four copies were taken (within one second, a name freed by the rotation may recur).
    assert len(states) == 4
    assert _copies(odd_ledger) == sorted(taken[-2:])
    assert len(_leftovers(odd_ledger)) == 4  # two pairs, no orphaned sidecar
    with pytest.raises(ConfigError, match="at least 1"):
        restore_backup(backup, odd_ledger, profile=PROFILE, pre_restore_keep=0)


def test_pre_restore_copies_never_take_a_backup_s_place(odd_ledger: Path, tmp_path: Path) -> None:
    """Newer, verified pre-restore copies neither count towards --keep / keep-last nor stand
    in for the newest verified backup: the backups' plan is the one without them."""
    directory = tmp_path / "backups"
    backups = [Path(create_backup(odd_ledger, directory, profile=PROFILE).backup_path)]
    for _ in range(2):
        add_odd_transactions(odd_ledger, 2)
        backups.append(Path(create_backup(odd_ledger, directory, profile=PROFILE).backup_path))
    for _ in range(3):
        add_odd_transactions(odd_ledger, 2)
        restore_backup(backups[0], odd_ledger, profile=PROFILE, pre_restore_keep=3)
    assert len(_copies(odd_ledger)) == 3
    expected = plan_cleanup(list_backups(directory), 2)

    dry = cleanup_old_backups(directory, 2, dry_run=True, pre_restore=PreRestoreRule(odd_ledger, 1))
    backups_plan = [
        (d.entry.path, d.keep) for d in dry.plan.decisions if d.entry.kind != PRE_RESTORE
    ]
    assert backups_plan == [(d.entry.path, d.keep) for d in expected.decisions]
    assert [d.keep for d in dry.plan.decisions if d.entry.kind == PRE_RESTORE] == [
        True,
        False,
        False,
    ]
    assert len(_copies(odd_ledger)) == 3  # a dry run
    result = prune_backups(
        directory, RetentionPolicy(keep_last=1), pre_restore=PreRestoreRule(odd_ledger, 1)
    )
    assert len(_copies(odd_ledger)) == 1
    assert len(_leftovers(odd_ledger)) == 2  # one pair, no orphaned sidecar
    # keep-last 1, and the backup the restores verified: the newest verified full backup.
    assert [e.path for e in list_backups(directory)] == [backups[-1], backups[0]]
    assert len(result.removed_files) == 2 + 2 * 2  # one backup and two copies, with sidecars


def test_plan_pre_restore_keeps_the_newest_and_the_protected_copy(
    odd_ledger: Path, tmp_path: Path
) -> None:
    backup = Path(create_backup(odd_ledger, tmp_path / "b", profile=PROFILE).backup_path)
    for _ in range(3):
        add_odd_transactions(odd_ledger, 1)
        restore_backup(backup, odd_ledger, profile=PROFILE, pre_restore_keep=5)
    copies = pre_restore_copies(odd_ledger)
    oldest = copies[-1].path
    for keep in (1, 2, 3, 4):
        plan = plan_pre_restore(copies, keep, protect=oldest)
        assert len(plan) == len(copies)  # every copy gets a decision
        kept = [d.entry.path for d in plan if d.keep]
        assert kept[: min(keep, 3)] == [c.path for c in copies[:keep]]
        assert oldest in kept
    with pytest.raises(ConfigError):
        PreRestoreRule(odd_ledger, 0)


def test_cleanup_leaves_the_copies_of_a_busy_database_for_the_next_run(
    odd_ledger: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "backups"
    backup = Path(create_backup(odd_ledger, directory, profile=PROFILE).backup_path)
    for _ in range(2):
        add_odd_transactions(odd_ledger, 1)
        restore_backup(backup, odd_ledger, profile=PROFILE, pre_restore_keep=2)
    rule = PreRestoreRule(odd_ledger, 1)
    with lock.hold(odd_ledger, "restore"):  # a restore (or backup) of the database runs
        result = cleanup_old_backups(directory, 1, pre_restore=rule)
    assert len(_copies(odd_ledger)) == 2
    assert all(
        d.keep and "left for the next run" in d.reason
        for d in result.plan.decisions
        if d.entry.kind == PRE_RESTORE
    )
    cleanup_old_backups(directory, 1, pre_restore=rule)
    assert len(_copies(odd_ledger)) == 1
