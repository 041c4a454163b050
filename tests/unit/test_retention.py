"""Listing (dagvault.catalog), retention (dagvault.retention), schedule (dagvault.schedule)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from _helpers import hidden_leftovers, read_meta_json, visible_files, write_meta_json
from hypothesis import given, settings
from hypothesis import strategies as st

from dagvault import lock, pages
from dagvault.backup import create_backup
from dagvault.catalog import CatalogEntry, list_backups
from dagvault.errors import ConfigError, OperationInProgress
from dagvault.meta import BackupInfo, Verification, meta_path
from dagvault.retention import cleanup_old_backups, plan_cleanup
from dagvault.sample import create_sample_ledger
from dagvault.schedule import backup_schedule
from dagvault.verify import verify_backup


def take_backups(ledger: Path, directory: Path, count: int) -> list[Path]:
    """``count`` real backups, oldest first."""
    return [Path(create_backup(ledger, directory).backup_path) for _ in range(count)]


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(data)


def sizes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def with_meta(paths: list[Path]) -> list[Path]:
    return [f for p in paths for f in (p, meta_path(p))]


# --------------------------------------------------------------------------- list


def test_list_is_newest_first_with_fallback_entries(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    taken = take_backups(ledger, backups, 3)  # same second, ordered by created_at
    old_orphan = backups / "blockchain_1000000000.db"
    old_orphan.write_bytes(b"x" * 1234)
    future_orphan = backups / "blockchain_4000000000_2.db"
    future_orphan.write_bytes(taken[0].read_bytes())
    (backups / f".blockchain_1000000001.db.{os.getpid()}.tmp").write_bytes(b"temp")
    (backups / "notes.txt").write_text("not a backup")
    (backups / "lonely.db.meta").write_text("{}")  # a sidecar without data is no backup

    entries = list_backups(backups)

    assert [e.path for e in entries] == [future_orphan, *reversed(taken), old_orphan]
    by_path = {e.path: e for e in entries}
    fallback = by_path[old_orphan]
    assert fallback.info is None
    assert fallback.file_size == 1234
    assert fallback.timestamp == 1_000_000_000
    assert fallback.problem and "missing" in fallback.problem
    assert by_path[future_orphan].timestamp == 4_000_000_000
    assert not by_path[future_orphan].verified

    listed = fallback.to_json()
    assert listed["has_metadata"] is False
    assert listed["file_size"] == 1234
    assert listed["timestamp"] == 1_000_000_000
    assert listed["problem"] == fallback.problem
    for path in taken:
        row = by_path[path].to_json()
        document = read_meta_json(path)
        for key in ("timestamp", "backup_path", "file_size", "total_transactions", "backup_type"):
            assert row[key] == document[key], key
        assert row["has_metadata"] is True and row["problem"] is None
        assert row["total_transactions"] == 300 and row["backup_type"] == "Full"


def test_list_limit_and_absent_directory(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    taken = take_backups(ledger, backups, 4)
    assert [e.path for e in list_backups(backups, limit=2)] == [taken[3], taken[2]]
    assert list_backups(backups, limit=0) == []
    assert len(list_backups(backups, limit=10)) == 4
    assert list_backups(tmp_path / "absent") == []


def test_list_mtime_fallback_for_names_without_timestamp(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    odd = backups / "manual-copy.db"
    odd.write_bytes(b"?")
    os.utime(odd, (1_600_000_000, 1_600_000_000))
    [entry] = list_backups(backups)
    assert entry.timestamp == 1_600_000_000 and entry.info is None


# --------------------------------------------------------------------------- plan (pure)

STATUSES = (None, "unverified", "verified", "failed")


def make_entry(index: int, timestamp: int, micro: int, status: str | None) -> CatalogEntry:
    path = Path(f"/backups/ledger_{timestamp}_{index}.db")
    info = None
    if status is not None:
        info = BackupInfo(
            timestamp=timestamp,
            backup_path=str(path),
            database_path="/data/ledger.db",
            file_size=4096,
            total_transactions=1,
            total_nodes=1,
            backup_type="Full",
            compression_enabled=False,
            checksum="0" * 64,
            metadata={},
            created_at=f"2026-01-01T00:00:00.{micro:06d}+00:00",
            verification=Verification(status=status),  # type: ignore[arg-type]
        )
    return CatalogEntry(path, 4096, timestamp, info, None if info else "no metadata")


entry_lists = st.lists(
    st.tuples(
        st.integers(1_700_000_000, 1_700_000_020),
        st.integers(0, 999_999),
        st.sampled_from(STATUSES),
    ),
    max_size=25,
).map(lambda rows: [make_entry(i, ts, micro, status) for i, (ts, micro, status) in enumerate(rows)])


@settings(max_examples=300, deadline=None)
@given(entries=entry_lists, keep=st.integers(1, 30), data=st.data())
def test_plan_cleanup_invariants(
    entries: list[CatalogEntry], keep: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(entries))
    plan = plan_cleanup(shuffled, keep)

    kept = [e.path for e in plan.keep]
    removed = [e.path for e in plan.remove]
    everything = [e.path for e in entries]
    assert sorted(kept + removed) == sorted(everything)  # union == input, nothing duplicated
    assert not set(kept) & set(removed)
    assert len(plan.decisions) == len(entries)

    newest_first = sorted(entries, key=lambda e: e.sort_key, reverse=True)
    assert [d.entry.path for d in plan.decisions] == [e.path for e in newest_first]
    # N restorable backups (not failed, with metadata) are kept, however many newer ones a
    # restore would refuse; those are kept only while among the N newest files.
    restorable = [e for e in newest_first if e.info and e.info.verification.status != "failed"]
    expected = {e.path for e in newest_first[:keep]} | {e.path for e in restorable[:keep]}
    verified = [e for e in newest_first if e.verified]
    if verified:
        expected.add(verified[0].path)
        assert verified[0].path in kept
    assert set(kept) == expected
    assert len(kept) <= 2 * keep + 1
    for decision in plan.decisions:
        assert decision.reason
        assert decision.to_json()["action"] == ("keep" if decision.keep else "remove")


@given(keep=st.integers(-5, 0))
def test_plan_cleanup_refuses_keep_below_one(keep: int) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_cleanup([make_entry(0, 1_700_000_000, 0, "verified")], keep)
    assert caught.value.exit_code == 2
    assert "--keep" in caught.value.message


# --------------------------------------------------------------------------- cleanup (real files)


def test_cleanup_removes_data_and_meta_and_reports_exactly(
    ledger: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backups = tmp_path / "backups"
    taken = take_backups(ledger, backups, 5)
    orphan = backups / "blockchain_1000000000.db.meta"
    orphan.write_text('{"left": "behind"}')
    doomed = [*with_meta(taken[:3]), orphan]
    expected_bytes = sizes(doomed)
    caplog.set_level(logging.INFO, logger="dagvault")

    result = cleanup_old_backups(backups, keep=2)

    assert sorted(result.removed_files) == sorted(str(p) for p in doomed)
    assert result.bytes_freed == expected_bytes
    assert not any(p.exists() for p in doomed)
    assert visible_files(backups) == sorted(p.name for p in with_meta(taken[3:]))
    assert [e.path for e in result.plan.keep] == [taken[4], taken[3]]
    assert [e.path for e in list_backups(backups)] == [taken[4], taken[3]]
    summary = result.to_json()
    assert (summary["kept"], summary["removed_backups"], summary["files_removed"]) == (2, 3, 7)
    assert summary["bytes_freed"] == expected_bytes
    assert f"🧹 Cleaned up 7 old backup files, freed {expected_bytes} bytes" in [
        r.getMessage() for r in caplog.records if r.name == "dagvault"
    ]
    assert hidden_leftovers(backups) == []


def test_dry_run_deletes_nothing_and_predicts_the_real_run(
    ledger: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backups = tmp_path / "backups"
    taken = take_backups(ledger, backups, 4)
    meta_path(taken[0]).write_text("{ broken")  # listed without metadata; its sidecar goes too
    (backups / "blockchain_1000000000.db.meta").write_text("{}")  # orphan sidecar
    before = {name: (backups / name).read_bytes() for name in visible_files(backups)}
    caplog.set_level(logging.INFO, logger="dagvault")

    dry = cleanup_old_backups(backups, keep=1, dry_run=True)

    assert {name: (backups / name).read_bytes() for name in visible_files(backups)} == before
    assert hidden_leftovers(backups) == []
    assert dry.dry_run and dry.removed_files == []
    assert not [r for r in caplog.records if "🧹" in r.getMessage()]
    assert [e.path for e in dry.plan.remove] == [taken[2], taken[1], taken[0]]

    real = cleanup_old_backups(backups, keep=1)

    assert [d.to_json() for d in dry.plan.decisions] == [d.to_json() for d in real.plan.decisions]
    assert (
        dry.bytes_freed
        == real.bytes_freed
        == sum(len(content) for name, content in before.items() if not name.startswith("."))
        - sizes(with_meta([taken[3]]))
    )


def test_older_verified_backup_survives_newer_unverified_and_failed(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    taken = take_backups(ledger, backups, 5)
    assert verify_backup(taken[0]).ok
    flip_bit(taken[3])
    flip_bit(taken[4])
    assert not verify_backup(taken[3]).ok and not verify_backup(taken[4]).ok

    result = cleanup_old_backups(backups, keep=1)

    # The two failed ones do not count among the 1 kept: the newest intact one does.
    assert [e.path for e in result.plan.keep] == [taken[4], taken[2], taken[0]]
    reasons = {d.entry.path: d.reasons for d in result.plan.decisions}
    assert reasons[taken[2]] == ("among the newest 1",)
    assert "a restore would refuse it" in reasons[taken[4]][0]
    # A full backup: the newest verified backup is also the newest verified full.
    assert reasons[taken[0]] == ("newest verified backup", "newest verified full backup")
    assert [e.path for e in list_backups(backups)] == [taken[4], taken[2], taken[0]]
    assert read_meta_json(taken[0])["verification"]["status"] == "verified"
    assert not taken[1].exists() and not meta_path(taken[1]).exists()
    assert not taken[3].exists()


def test_cleanup_keeps_the_chain_of_a_kept_delta_and_removes_page_caches(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    full = Path(create_backup(ledger, backups).backup_path)
    assert verify_backup(full).ok
    create_sample_ledger(ledger, 20, append=True)
    incr = Path(create_backup(ledger, backups, kind="incremental").backup_path)
    create_sample_ledger(ledger, 20, append=True)
    newest = Path(create_backup(ledger, backups, kind="incremental").backup_path)
    orphan = backups / "blockchain_1000000000.db.pages"  # its backup is gone
    orphan.write_bytes(b"digests")

    result = cleanup_old_backups(backups, keep=1)

    # Restoring the newest incremental needs every older backup: nothing else may go.
    reasons = {d.entry.path: d.reasons for d in result.plan.decisions}
    assert reasons == {
        newest: ("among the newest 1",),
        incr: (f"needed by {newest.name}",),
        full: ("newest verified backup", f"needed by {incr.name}", "newest verified full backup"),
    }
    assert result.removed_files == [str(orphan)]

    # Once the full is the newest, the deltas go with their sidecars and page caches.
    create_sample_ledger(ledger, 20, append=True)
    fresh = Path(create_backup(ledger, backups).backup_path)
    doomed = [f for b in (newest, incr) for f in (b, meta_path(b), pages.cache_path(b))]
    expected = sizes(doomed)
    result = cleanup_old_backups(backups, keep=1)
    assert sorted(result.removed_files) == sorted(map(str, doomed))
    assert result.bytes_freed == expected
    assert [e.path for e in list_backups(backups)] == [fresh, full]  # full: newest verified full


def test_cleanup_with_fewer_backups_than_keep_removes_nothing(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    taken = take_backups(ledger, backups, 2)
    result = cleanup_old_backups(backups, keep=5)
    assert result.removed_files == [] and result.bytes_freed == 0
    assert visible_files(backups) == sorted(p.name for p in with_meta(taken))


def test_cleanup_refuses_keep_zero_and_while_a_backup_runs(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    taken = take_backups(ledger, backups, 2)
    with pytest.raises(ConfigError):
        cleanup_old_backups(backups, keep=0)
    with lock.hold(backups, "backup", shared=True), pytest.raises(OperationInProgress) as caught:
        cleanup_old_backups(backups, keep=1)
    assert caught.value.exit_code == 5
    assert visible_files(backups) == sorted(p.name for p in with_meta(taken))


def test_cleanup_of_an_absent_directory_does_nothing(tmp_path: Path) -> None:
    for absent in (tmp_path / "absent", tmp_path / "no" / "such" / "dir"):
        result = cleanup_old_backups(absent, keep=3)
        assert result.removed_files == [] and result.bytes_freed == 0
        assert result.plan.decisions == []
    with pytest.raises(ConfigError):
        cleanup_old_backups(tmp_path / "absent", keep=0)
    assert list(tmp_path.iterdir()) == []  # not even a lock file beside the missing path


# --------------------------------------------------------------------------- schedule


def test_schedule_without_backups_is_due(ledger: Path, tmp_path: Path) -> None:
    plan = backup_schedule(ledger, tmp_path / "absent", 24, now=1_800_000_000.5)
    assert plan.is_due
    assert plan.last_backup == 0
    assert plan.next_backup == 1_800_000_000
    assert plan.interval_hours == 24
    assert plan.backup_dir == str(tmp_path / "absent")


def test_schedule_after_a_fresh_backup(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    info = create_backup(ledger, backups)
    plan = backup_schedule(ledger, backups, 6)
    assert not plan.is_due
    assert plan.last_backup == info.timestamp
    assert plan.next_backup == info.timestamp + 6 * 3600
    assert plan.to_json()["next_backup"] == plan.next_backup
    assert not backup_schedule(ledger, backups, 6, now=info.timestamp + 6 * 3600 - 1).is_due
    assert backup_schedule(ledger, backups, 6, now=info.timestamp + 6 * 3600).is_due
    assert backup_schedule(ledger, backups, 6, now=info.timestamp + 10**8).is_due
    # The same database reached through a symlink is still the same database.
    link = tmp_path / "link.db"
    link.symlink_to(ledger)
    assert backup_schedule(link, backups, 6).last_backup == info.timestamp


def test_schedule_ignores_other_databases_in_the_directory(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = other_dir / "blockchain.db"  # same file name, different database
    create_sample_ledger(other, 20, seed=3, nodes=4)
    create_backup(other, backups)
    plan = backup_schedule(ledger, backups, 24)
    assert plan.is_due and plan.last_backup == 0
    assert not backup_schedule(other, backups, 24).is_due


def test_schedule_ignores_failed_and_metadata_less_backups(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    info = create_backup(ledger, backups)
    path = Path(info.backup_path)
    flip_bit(path)
    assert not verify_backup(path).ok
    plan = backup_schedule(ledger, backups, 24)
    assert plan.is_due and plan.last_backup == 0

    # A data file without sidecar, named like a fresh backup of this database, does not count.
    (backups / f"blockchain_{info.timestamp + 1}.db").write_bytes(b"no sidecar")
    assert backup_schedule(ledger, backups, 24).is_due

    fresh = create_backup(ledger, backups)
    assert verify_backup(Path(fresh.backup_path)).ok
    plan = backup_schedule(ledger, backups, 24)
    assert not plan.is_due and plan.last_backup == fresh.timestamp


def test_verified_unverified_backup_counts_only_if_not_failed(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    info = create_backup(ledger, backups)
    document = read_meta_json(Path(info.backup_path))
    assert document["verification"]["status"] == "unverified"
    assert not backup_schedule(ledger, backups, 24).is_due  # unverified still counts
    document["verification"]["status"] = "failed"
    write_meta_json(Path(info.backup_path), document)
    assert backup_schedule(ledger, backups, 24).is_due
    assert re.fullmatch(r"blockchain_\d+\.db", Path(info.backup_path).name)


def test_cleanup_and_prune_never_remove_a_live_database_kept_in_the_backup_directory(
    tmp_path: Path,
) -> None:
    # Found while testing pre-restore copies: a ledger kept inside BACKUP_DIR was listed as a
    # backup without metadata and removed by `cleanup --keep 1`.
    from _helpers import make_odd_ledger

    from dagvault.retention import RetentionPolicy, prune_backups

    backups = tmp_path / "node"
    backups.mkdir()
    live = make_odd_ledger(backups / "ledger.db", 20, blob_size=100)
    for _ in range(3):
        create_backup(live, backups)
    result = cleanup_old_backups(backups, 1)
    assert live.is_file()
    assert len([f for f in result.removed_files if f.endswith(".db")]) == 2
    prune_backups(backups, RetentionPolicy(keep_last=1))
    assert live.is_file()
    plan = [d for d in plan_cleanup(list_backups(backups), 1).decisions if d.entry.path == live]
    assert plan[0].keep and "not a dagvault backup" in plan[0].reasons[0]
