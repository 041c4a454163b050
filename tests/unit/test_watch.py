"""The ledger watcher's core (dagvault/watch.py) and resource-aware deferral
(dagvault/resources.py) on real WAL-mode ledger files, with a clock the test moves."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from _helpers import ODD_LEDGER_CONFIG, add_odd_transactions, make_odd_ledger

from dagvault.config import load_settings
from dagvault.errors import ConfigError, DatabaseNotFound, NotASQLiteDatabase
from dagvault.resources import ResourceLimits, busy_reasons, wait_for_resources
from dagvault.watch import (
    CHANGED,
    SIGNIFICANT,
    BackupTrigger,
    LedgerEvent,
    LedgerProbe,
    Watcher,
    WatchRules,
    trigger_window,
    watch,
)

TX_TABLE = ODD_LEDGER_CONFIG["ledger"]["transactions_table"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _watcher(db: Path, clock: Clock, **rules: object) -> Watcher:
    tables = tuple(rules.pop("significant_tables", ()))  # type: ignore[arg-type]
    probe = LedgerProbe(db, TX_TABLE, tables)
    return Watcher(probe, WatchRules(significant_tables=tables, **rules), clock)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return make_odd_ledger(tmp_path / "node ledger ✓.db", 20, blob_size=2_400)


def test_a_quiet_ledger_sends_nothing_and_a_commit_one_changed_event(ledger: Path) -> None:
    clock = Clock()
    watcher = _watcher(ledger, clock)
    assert watcher.poll() == []
    add_odd_transactions(ledger, 7, blob_size=2_400)
    (event,) = watcher.poll()
    assert event.name == CHANGED
    assert event.resource["prefect.resource.id"] == "dagvault.ledger.node ledger ✓"
    assert event.resource["dagvault.database.path"] == str(ledger.resolve())
    assert event.payload["new_transactions"] == 7
    assert event.payload["wal_growth_bytes"] > 7 * 2_400
    assert event.payload["replaced"] is False
    assert watcher.poll() == []  # reported once


def test_changes_within_the_emit_gap_are_gathered_into_the_next_event(ledger: Path) -> None:
    clock = Clock()
    watcher = _watcher(ledger, clock, emit_gap_seconds=5.0)
    add_odd_transactions(ledger, 1, blob_size=100)
    assert [e.name for e in watcher.poll()] == [CHANGED]
    for _ in range(3):  # three looks with commits, 1 s apart: within the gap
        clock.now += 1
        add_odd_transactions(ledger, 2, blob_size=100)
        assert watcher.poll() == []
    clock.now += 2  # 5 s after the last event
    (event,) = watcher.poll()
    assert event.payload["new_transactions"] == 6
    assert event.payload["looks_with_changes"] == 3


def test_k_new_transactions_are_a_significant_change_once(ledger: Path) -> None:
    clock = Clock()
    watcher = _watcher(ledger, clock, significant_transactions=10)
    add_odd_transactions(ledger, 9, blob_size=100)
    assert [e.name for e in watcher.poll()] == [CHANGED]
    clock.now += 1
    add_odd_transactions(ledger, 1, blob_size=100)
    changed, significant = watcher.poll()  # the pending change goes out with it, at once
    assert (changed.name, significant.name) == (CHANGED, SIGNIFICANT)
    assert significant.payload["new_transactions"] == 10
    assert significant.payload["reasons"] == [
        "10 new transactions (watch.significant_transactions 10)"
    ]
    clock.now += 10
    add_odd_transactions(ledger, 9, blob_size=100)
    assert [e.name for e in watcher.poll()] == [CHANGED]  # counted from the last one


def test_a_row_in_a_named_table_is_a_significant_change(ledger: Path) -> None:
    with closing(sqlite3.connect(ledger)) as conn:
        conn.execute("CREATE TABLE checkpoints (height INTEGER PRIMARY KEY, digest BLOB)")
        conn.commit()
    clock = Clock()
    watcher = _watcher(ledger, clock, significant_tables=("checkpoints",))
    add_odd_transactions(ledger, 3, blob_size=100)
    assert [e.name for e in watcher.poll()] == [CHANGED]
    with closing(sqlite3.connect(ledger)) as conn:
        conn.execute("INSERT INTO checkpoints VALUES (1, x'00ff')")
        conn.commit()
    clock.now += 0.5  # within the gap: the checkpoint does not wait for it
    events = watcher.poll()
    assert [e.name for e in events] == [CHANGED, SIGNIFICANT]
    assert events[1].payload["reasons"] == ["a new row in checkpoints"]
    assert events[1].payload["tables"] == {"checkpoints": 1}


@pytest.mark.parametrize("table", ["validators", "stake_by_label", "no_such_table"])
def test_a_named_table_without_rowids_is_a_clear_error(ledger: Path, table: str) -> None:
    with pytest.raises(ConfigError, match=f"names '{table}'") as caught:
        LedgerProbe(ledger, TX_TABLE, (table,))
    assert "watch.significant_tables" in (caught.value.hint or "")


def test_a_missing_or_foreign_ledger_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseNotFound, match="does not exist"):
        LedgerProbe(tmp_path / "nope.db", TX_TABLE)
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    with pytest.raises(NotASQLiteDatabase, match="Cannot read the ledger"):
        LedgerProbe(tmp_path / "notes.txt", TX_TABLE)


def test_a_transactions_table_without_rowids_turns_the_k_rule_off(
    ledger: Path, caplog: pytest.LogCaptureFixture
) -> None:
    probe = LedgerProbe(ledger, "validators")  # WITHOUT ROWID: no cheap high-water mark
    watcher = Watcher(probe, WatchRules(significant_transactions=1), Clock())
    assert "rule of 1 new transactions is off" in caplog.text
    add_odd_transactions(ledger, 5, blob_size=100)
    assert [e.name for e in watcher.poll()] == [CHANGED]


def test_a_ledger_swapped_in_by_a_restore_is_followed(ledger: Path, tmp_path: Path) -> None:
    clock = Clock()
    watcher = _watcher(ledger, clock)
    other = make_odd_ledger(tmp_path / "restored.db", 40, blob_size=100)
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(other, ledger)
    for suffix in ("-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    (event,) = watcher.poll()
    assert event.payload["replaced"] is True
    assert event.payload["new_transactions"] == 20  # 40 now, 20 before
    add_odd_transactions(ledger, 2, blob_size=100)
    clock.now += 10
    (event,) = watcher.poll()
    assert event.payload["new_transactions"] == 2  # read through the new file


def test_a_ledger_removed_while_watched_stops_the_watcher_clearly(ledger: Path) -> None:
    watcher = _watcher(ledger, Clock())
    ledger.unlink()
    with pytest.raises(DatabaseNotFound, match="removed while it was watched"):
        watcher.poll()


def test_the_watcher_leaves_no_read_transaction_open(ledger: Path) -> None:
    """A reader's open snapshot would stop a checkpoint from resetting the WAL, and so make
    the node's WAL grow without bound: after each look, a TRUNCATE checkpoint succeeds."""
    watcher = _watcher(ledger, Clock(), significant_transactions=5)
    with closing(sqlite3.connect(ledger, timeout=0)) as writer:
        for _ in range(3):
            add_odd_transactions(ledger, 2, blob_size=100)
            watcher.poll()
            busy, _, _ = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0
            assert Path(f"{ledger}-wal").stat().st_size == 0


def test_a_look_does_not_wait_for_a_writer_holding_its_lock(ledger: Path) -> None:
    watcher = _watcher(ledger, Clock())
    with closing(sqlite3.connect(ledger, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM tx_edges")  # uncommitted: not a change yet
        assert watcher.poll() == []
        writer.execute("COMMIT")
    assert [e.name for e in watcher.poll()] == [CHANGED]


def _event(name: str) -> LedgerEvent:
    return LedgerEvent(name, {}, {"reasons": ["x"]})


def test_the_backup_trigger_fires_once_per_window_and_at_once_when_significant() -> None:
    trigger = BackupTrigger(window_seconds=30)
    assert trigger.fires(_event(CHANGED), 0)
    assert not trigger.fires(_event(CHANGED), 10)
    assert trigger.fires(_event(SIGNIFICANT), 11)
    assert not trigger.fires(_event(CHANGED), 29.9)
    assert trigger.fires(_event(CHANGED), 30)
    assert trigger_window(60) == 30 and trigger_window(1) == 1


def test_a_deferred_backup_runs_when_the_machine_allows() -> None:
    clock = Clock()
    busy = iter([["load 9 per core"], ["load 7 per core"], []])

    def sleep(seconds: float) -> None:
        clock.now += seconds

    deferral = wait_for_resources(lambda: next(busy), clock.now + 100, clock, sleep)
    assert deferral.waited_seconds == 10
    assert deferral.reasons == ("load 7 per core",)
    assert not deferral.gave_up
    assert deferral.message.startswith("deferred 10 s (load 7 per core)")


def test_a_deferred_backup_runs_anyway_at_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    deferral = wait_for_resources(lambda: ["disk"], clock.now + 12, clock, sleep)
    assert deferral.gave_up and deferral.waited_seconds == 12
    assert "ran anyway at the bound" in deferral.message
    assert "running it anyway: disk" in caplog.text
    assert caplog.text.count("Backup deferred: disk") == 3  # at 0, 5 and 10 s


def test_busy_reasons_name_the_setting_and_zero_switches_a_rule_off(tmp_path: Path) -> None:
    (reason,) = busy_reasons(tmp_path / "not yet", ResourceLimits(2**62, 0.0))
    assert "below BACKUP_MIN_FREE_MB" in reason
    assert busy_reasons(tmp_path, ResourceLimits(0, 0.0)) == []
    assert busy_reasons(tmp_path, ResourceLimits(0, 1e-9)) != [] or os.getloadavg()[0] == 0


def test_watch_settings_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "DAGVAULT_WATCH_TABLES": "checkpoints, milestones",
            "DAGVAULT_WATCH_TRANSACTIONS": "0",
            "RPO_TARGET_SECONDS": "90",
            "BACKUP_MAX_LOAD_PER_CPU": "0",
        }
    )
    assert settings.watch_significant_tables == ("checkpoints", "milestones")
    assert settings.watch_significant_transactions == 0
    assert settings.rpo_target_seconds == 90
    assert ResourceLimits.of(settings) == ResourceLimits(1024 * 2**20, 0.0)
    with pytest.raises(ConfigError, match="RPO_TARGET_SECONDS"):
        load_settings(environ={"RPO_TARGET_SECONDS": "0"})


def test_what_is_unreported_when_the_watcher_stops_is_flushed(ledger: Path) -> None:
    clock = Clock()
    watcher = _watcher(ledger, clock)
    assert watcher.flush() == []
    add_odd_transactions(ledger, 1, blob_size=100)
    watcher.poll()
    add_odd_transactions(ledger, 4, blob_size=100)
    clock.now += 1
    assert watcher.poll() == []  # within the gap
    (event,) = watcher.flush()
    assert event.payload["new_transactions"] == 4
    assert watcher.flush() == []


def test_commits_after_the_last_look_are_flushed_too(ledger: Path) -> None:
    """The watcher is stopped right after a backup it took: commits made during that backup
    were never looked at, and are reported all the same."""
    watcher = _watcher(ledger, Clock())
    add_odd_transactions(ledger, 2, blob_size=100)
    (changed,) = watcher.poll()
    add_odd_transactions(ledger, 3, blob_size=100)  # no look since
    (event,) = watcher.flush()
    assert changed.payload["new_transactions"] + event.payload["new_transactions"] == 5
    ledger.unlink()  # a last look that fails reports what the looks saw: nothing new
    assert watcher.flush() == []


def test_watch_hands_what_is_unreported_to_on_stop_when_it_stops(ledger: Path) -> None:
    watcher = _watcher(ledger, Clock())
    looks = iter([False, True])  # one look, then stop

    def stop(_timeout: float) -> bool:
        add_odd_transactions(ledger, 2, blob_size=100)  # a commit before each look/stop
        return next(looks)

    polled: list[LedgerEvent] = []
    flushed: list[LedgerEvent] = []
    watch(watcher, polled.append, stop, on_stop=flushed.append)
    assert [e.payload["new_transactions"] for e in polled] == [2]
    assert [e.payload["new_transactions"] for e in flushed] == [2]
