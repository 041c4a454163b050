"""``dagvault prune``: restic-style retention (dagvault.retention.plan_retention / prune_backups),
its Prefect flow and its command.

Calendar cases use synthetic catalog entries (real backups taken within a test share one
second); chain cases use real full/incremental/differential backups that must still verify
and restore after a prune.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_prune.py."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import at, entry, hidden_leftovers
from _shared.prune import TYPE, History
from hypothesis import given, settings
from hypothesis import strategies as st

from dagvault import lock
from dagvault.backup import create_backup
from dagvault.catalog import CatalogEntry, list_backups
from dagvault.errors import ConfigError, OperationInProgress
from dagvault.meta import meta_path, read_meta
from dagvault.pages import cache_path
from dagvault.retention import (
    CleanupPlan,
    RetentionPolicy,
    cleanup_old_backups,
    plan_cleanup,
    plan_retention,
    prune_backups,
)
from dagvault.verify import verify_backup

SUFFIX = {"Full": ".db", "Incremental": ".incr", "Differential": ".diff"}


def names(entries: list[CatalogEntry]) -> list[str]:
    return [e.path.name for e in entries]


def reasons_of(plan: CleanupPlan) -> dict[str, tuple[str, ...]]:
    return {d.entry.path.name: d.reasons for d in plan.decisions}


def newest_first(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    return sorted(entries, key=lambda e: e.sort_key, reverse=True)


# --------------------------------------------------------------------------- policy


def test_empty_policies_are_refused_unless_a_default_applies() -> None:
    entries = [entry(f"b{i}.db", at("2025-03-01T00:00") + i, order=i) for i in range(5)]
    for empty in (RetentionPolicy(), RetentionPolicy(keep_last=0, keep_daily=0)):
        assert empty.is_empty
        with pytest.raises(ConfigError) as caught:
            plan_retention(entries, empty)
        assert caught.value.exit_code == 2 and "empty" in caught.value.message
        assert "--keep-last" in caught.value.hint
    # BACKUP_RETENTION_COUNT applies when no rule is given at all ...
    plan = plan_retention(entries, RetentionPolicy(), default_keep_last=2)
    assert names(plan.keep) == ["b4.db", "b3.db"] and plan.policy == RetentionPolicy(keep_last=2)
    # ... but an explicit 0 is a rule switched off, never silently "keep the default".
    with pytest.raises(ConfigError, match="set to 0 is off"):
        plan_retention(entries, RetentionPolicy(keep_last=0), default_keep_last=2)
    assert names(plan_retention(entries, RetentionPolicy(keep_last=0, keep_daily=1)).keep) == [
        "b4.db"
    ]
    for bad in ({"keep_last": -1}, {"keep_daily": True}, {"keep_weekly": 1.5}):
        with pytest.raises(ConfigError, match="whole number"):
            RetentionPolicy(**bad)  # type: ignore[arg-type]
    assert (
        RetentionPolicy(keep_last=3, keep_monthly=12).describe() == "keep-last 3, keep-monthly 12"
    )


# --------------------------------------------------------------------------- calendar buckets


def test_keep_daily_keeps_the_newest_of_each_day_that_has_backups() -> None:
    times = [
        "2026-01-05T10:00",
        "2026-01-05T16:00",
        "2026-01-06T09:00",
        "2026-01-06T21:30",  # nothing on 01-07: a day without backups is not counted
        "2026-01-08T03:00",
        "2026-01-08T03:45",
    ]
    entries = [entry(f"b_{t}.db", at(t), order=i) for i, t in enumerate(times)]

    plan = plan_retention(entries, RetentionPolicy(keep_daily=3))
    assert names(plan.keep) == [
        "b_2026-01-08T03:45.db",
        "b_2026-01-06T21:30.db",
        "b_2026-01-05T16:00.db",
    ]
    assert reasons_of(plan)["b_2026-01-06T21:30.db"] == ("daily 2026-01-06",)
    assert reasons_of(plan)["b_2026-01-08T03:00.db"] == ("matches no keep rule",)

    plan = plan_retention(entries, RetentionPolicy(keep_hourly=3))
    assert names(plan.keep) == [
        "b_2026-01-08T03:45.db",
        "b_2026-01-06T21:30.db",
        "b_2026-01-06T09:00.db",
    ]
    assert reasons_of(plan)["b_2026-01-08T03:45.db"] == ("hourly 2026-01-08 03:00",)

    # Rules combine with OR; a backup kept by several lists every reason.
    plan = plan_retention(entries, RetentionPolicy(keep_last=2, keep_daily=2, keep_weekly=1))
    assert reasons_of(plan)["b_2026-01-08T03:45.db"] == (
        "keep-last 2",
        "daily 2026-01-08",
        "weekly 2026-W02",
    )
    assert reasons_of(plan)["b_2026-01-08T03:00.db"] == ("keep-last 2",)
    assert reasons_of(plan)["b_2026-01-06T21:30.db"] == ("daily 2026-01-06",)
    assert len(plan.keep) == 3


def test_hour_day_week_and_month_boundaries_are_utc() -> None:
    times = [
        "2024-12-22T12:00",  # Sunday, ISO 2024-W51
        "2024-12-29T23:59:59",  # Sunday, ISO 2024-W52
        "2024-12-30T00:00",  # Monday: ISO week 2025-W01 although still December 2024
        "2025-01-02T10:59:59",
        "2025-01-02T11:00",  # a new hour
        "2025-01-31T23:59:59",
        "2025-02-01T00:00",  # a new month
        "2025-02-15T08:00",
        "2025-04-10T08:00",  # nothing in March: it is skipped, not counted
    ]
    entries = [entry(f"{t}.db", at(t), order=i) for i, t in enumerate(times)]

    def kept(**rules: int) -> list[str]:
        return [
            n.removesuffix(".db")
            for n in names(plan_retention(entries, RetentionPolicy(**rules)).keep)
        ]

    assert kept(keep_monthly=3) == ["2025-04-10T08:00", "2025-02-15T08:00", "2025-01-31T23:59:59"]
    assert kept(keep_monthly=4)[-1] == "2024-12-30T00:00"
    weekly = plan_retention(entries, RetentionPolicy(keep_weekly=20))
    by_week = {
        r[0].split()[1]: n for n, r in reasons_of(weekly).items() if r[0].startswith("weekly")
    }
    assert by_week["2025-W01"] == "2025-01-02T11:00.db"
    assert by_week["2024-W52"] == "2024-12-29T23:59:59.db"
    assert by_week["2024-W51"] == "2024-12-22T12:00.db"
    assert kept(keep_hourly=3) == ["2025-04-10T08:00", "2025-02-15T08:00", "2025-02-01T00:00"]
    assert kept(keep_hourly=7)[-3:] == [
        "2025-01-02T11:00",
        "2025-01-02T10:59:59",
        "2024-12-30T00:00",
    ]
    assert kept(keep_daily=7)[-2:] == ["2024-12-30T00:00", "2024-12-29T23:59:59"]


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """The process's local time zone is UTC+13:45 (Chatham Islands, with DST)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Chatham"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_buckets_do_not_depend_on_the_local_time_zone(far_from_utc: None) -> None:
    assert time.localtime(at("2025-01-01T00:00")).tm_hour != 0  # the zone is really in effect
    entries = [
        entry("late.db", at("2025-01-01T23:00"), order=2),
        entry("early.db", at("2025-01-01T01:00"), order=1),  # local: already Jan 1 14:45
        entry("eve.db", at("2024-12-31T20:00"), order=0),  # local: Jan 1 09:45
    ]
    plan = plan_retention(entries, RetentionPolicy(keep_daily=2))
    assert names(plan.keep) == ["late.db", "eve.db"]
    assert reasons_of(plan)["eve.db"] == ("daily 2024-12-31",)


def test_metadata_less_files_take_no_bucket_and_only_keep_last_keeps_them() -> None:
    entries = [
        entry("crash_1746187200.db", at("2025-05-02T12:00"), metadata=False),
        entry("good.db", at("2025-05-02T08:00"), order=1),
        entry("older.db", at("2025-05-01T08:00"), order=0),
    ]
    plan = plan_retention(entries, RetentionPolicy(keep_daily=1))
    assert names(plan.keep) == ["good.db"]
    assert "no readable metadata" in reasons_of(plan)["crash_1746187200.db"][0]
    plan = plan_retention(entries, RetentionPolicy(keep_last=1))
    assert names(plan.keep) == ["crash_1746187200.db"]  # keep-last counts every file


def test_a_kept_delta_keeps_its_chain_and_the_newest_verified_full_survives() -> None:
    day = at("2025-06-01T00:00")
    entries = [
        entry("f1.db", day, status="verified", order=0),
        entry("i1.incr", day + 3600, "Incremental", parent="f1.db", order=1),
        entry("d1.diff", day + 86400, "Differential", parent="f1.db", order=2),
        entry("i2.incr", day + 86400 + 60, "Incremental", parent="d1.diff", order=3),
        entry("f2.db", day + 2 * 86400, status="failed", order=4),
        entry("d2.diff", day + 2 * 86400 + 60, "Differential", parent="f2.db", order=5),
        entry("i3.incr", day + 3 * 86400, "Incremental", parent="d2.diff", order=6),
        entry("i4.incr", day + 3 * 86400 + 60, "Incremental", parent="i3.incr", order=7),
    ]
    plan = plan_retention(entries, RetentionPolicy(keep_daily=1))
    assert reasons_of(plan) == {
        "i4.incr": ("daily 2025-06-04",),
        "i3.incr": ("needed by i4.incr",),
        "d2.diff": ("needed by i3.incr",),
        "f2.db": ("needed by d2.diff",),
        "i2.incr": ("matches no keep rule",),
        "d1.diff": ("matches no keep rule",),
        "i1.incr": ("matches no keep rule",),
        "f1.db": ("newest verified full backup",),
    }
    plan = plan_retention(entries, RetentionPolicy(keep_daily=3))
    assert reasons_of(plan)["f1.db"] == ("needed by d1.diff", "newest verified full backup")
    assert set(names(plan.keep)) == {
        "i4.incr",
        "i3.incr",
        "d2.diff",
        "f2.db",
        "i2.incr",
        "d1.diff",
        "f1.db",
    }
    # Several kept children: the reason names the newest and counts the others.
    plan = plan_retention(entries, RetentionPolicy(keep_last=8))
    assert reasons_of(plan)["f1.db"] == (
        "keep-last 8",
        "needed by d1.diff (and 1 more)",
        "newest verified full backup",
    )

    # cleanup --keep: the newest verified backup comes with its chain, too.
    entries[3] = entry(
        "i2.incr", day + 86400 + 60, "Incremental", parent="d1.diff", status="verified", order=3
    )
    entries[0] = entry("f1.db", day, order=0)
    plan = plan_cleanup(entries, 1)
    assert reasons_of(plan) == {
        "i4.incr": ("among the newest 1",),
        "i3.incr": ("needed by i4.incr",),
        "d2.diff": ("needed by i3.incr",),
        "f2.db": ("needed by d2.diff",),
        "i2.incr": ("newest verified backup",),
        "d1.diff": ("needed by i2.incr",),
        "i1.incr": ("older than the newest 1",),
        "f1.db": ("needed by d1.diff",),
    }


# --------------------------------------------------------------------------- properties

GAPS = st.one_of(
    st.just(0),  # same second
    st.integers(1, 3 * 3600),
    st.integers(3600, 3 * 86400),
    st.integers(86400, 40 * 86400),  # the history spans months
)


@st.composite
def histories(draw: st.DrawFn) -> list[CatalogEntry]:
    """Backups as the engine makes them: an incremental's parent is the newest earlier usable
    backup, a differential's the newest usable full (usable: metadata, not failed); without
    one the engine takes a full backup. Some crash before their sidecar is written; some
    lose it later (they may be parents)."""
    timestamp = at("2025-01-01T00:00")
    made: list[CatalogEntry] = []
    lost: list[bool] = []
    for index in range(draw(st.integers(0, 30))):
        timestamp += draw(GAPS)
        kind = draw(st.sampled_from(tuple(TYPE)))
        status = draw(st.sampled_from(("unverified", "verified", "failed")))
        fate = draw(st.sampled_from(("ok", "ok", "ok", "crashed", "lost later")))
        usable = [
            e
            for e in reversed(made)
            if e.info is not None
            and e.info.verification.status != "failed"
            and (kind == "incremental" or e.info.backup_type == "Full")
        ]
        base = usable[0] if usable and kind != "full" else None
        backup_type = TYPE[kind] if base is not None else "Full"
        made.append(
            entry(
                f"ledger_{timestamp}_{index}{SUFFIX[backup_type]}",
                timestamp,
                backup_type,
                parent=base.path.name if base else None,
                status=status,
                order=index,
                metadata=fate != "crashed",
            )
        )
        lost.append(fate == "lost later")
    return [
        CatalogEntry(e.path, e.file_size, e.timestamp, None, "lost") if gone else e
        for e, gone in zip(made, lost, strict=True)
    ]


counts = st.none() | st.integers(0, 6)
policies = st.builds(
    RetentionPolicy,
    keep_last=counts,
    keep_hourly=counts,
    keep_daily=counts,
    keep_weekly=counts,
    keep_monthly=counts,
).filter(lambda p: not p.is_empty)

# An independent oracle for the buckets: epoch arithmetic instead of calendar labels.
BUCKET_OF = {
    "hourly": lambda ts: ts // 3600,
    "daily": lambda ts: ts // 86400,
    "weekly": lambda ts: (ts // 86400 + 3) // 7,  # day 0 (1970-01-01) is a Thursday
    "monthly": lambda ts: time.gmtime(ts)[:2],
}


def ancestors(backup: CatalogEntry, entries: list[CatalogEntry]) -> list[CatalogEntry]:
    by_name = {e.path.name: e for e in entries}
    found: list[CatalogEntry] = []
    while backup.info is not None and backup.info.backup_type != "Full":
        parent = by_name.get(backup.info.metadata.get("parent", ""))
        if parent is None or parent in found:
            break
        found.append(parent)
        backup = parent
    return found


def newest_verified_full(entries: list[CatalogEntry]) -> CatalogEntry | None:
    fulls = [
        e for e in newest_first(entries) if e.verified and e.info and e.info.backup_type == "Full"
    ]
    return fulls[0] if fulls else None


def with_chains(chosen: list[CatalogEntry], entries: list[CatalogEntry]) -> set[Path]:
    kept = {e.path for e in chosen} | {a.path for e in chosen for a in ancestors(e, entries)}
    full = newest_verified_full(entries)
    return kept | ({full.path} if full else set())


def assert_partition(plan: CleanupPlan, entries: list[CatalogEntry]) -> set[Path]:
    kept = [e.path for e in plan.keep]
    removed = [e.path for e in plan.remove]
    assert sorted(kept + removed) == sorted(e.path for e in entries)  # union == input, no dupes
    assert not set(kept) & set(removed)
    assert [d.entry.path for d in plan.decisions] == [e.path for e in newest_first(entries)]
    for decision in plan.decisions:
        assert decision.reasons and all(decision.reasons)
        assert decision.to_json()["action"] == ("keep" if decision.keep else "remove")
    for backup in plan.keep:  # every kept delta's chain is kept
        assert all(a.path in set(kept) for a in ancestors(backup, entries))
    full = newest_verified_full(entries)
    assert full is None or full.path in set(kept)
    return set(kept)


@settings(max_examples=300, deadline=None)
@given(history=histories(), policy=policies, data=st.data())
def test_plan_retention_properties(
    history: list[CatalogEntry], policy: RetentionPolicy, data: st.DataObject
) -> None:
    plan = plan_retention(data.draw(st.permutations(history)), policy)
    kept = assert_partition(plan, history)
    newest = newest_first(history)
    assert {e.path for e in newest[: policy.keep_last or 0]} <= kept

    chosen = newest[: policy.keep_last or 0]
    for rule, bucket in BUCKET_OF.items():
        first_in_bucket: dict[object, CatalogEntry] = {}
        for backup in newest:
            if backup.info is not None:
                first_in_bucket.setdefault(bucket(backup.timestamp), backup)
        chosen += list(first_in_bucket.values())[: getattr(policy, f"keep_{rule}") or 0]
    assert kept == with_chains(chosen, history)
    for decision in plan.decisions:
        if not decision.keep and decision.entry.info is None:
            assert "metadata" in decision.reason


@settings(max_examples=200, deadline=None)
@given(history=histories(), keep=st.integers(1, 12), data=st.data())
def test_plan_cleanup_properties_with_chains(
    history: list[CatalogEntry], keep: int, data: st.DataObject
) -> None:
    plan = plan_cleanup(data.draw(st.permutations(history)), keep)
    kept = assert_partition(plan, history)
    newest = newest_first(history)
    # Backups a restore would refuse (failed, no metadata) do not count among the N.
    restorable = [e for e in newest if e.info and e.info.verification.status != "failed"]
    chosen = newest[:keep] + restorable[:keep] + [e for e in newest if e.verified][:1]
    assert kept == with_chains(chosen, history)


# --------------------------------------------------------------------------- real backups


def snapshot_files(directory: Path) -> dict[str, bytes]:
    """Every file but the lock file (which names its last holder)."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != ".dagvault.lock"}


def files_of(backups: list[Path]) -> list[Path]:
    return [f for b in backups for f in (meta_path(b), cache_path(b), b) if f.exists()]


def test_prune_real_chains_keeps_every_kept_backup_restorable(
    ledger: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backups = tmp_path / "backups"
    history = History(ledger, backups, tmp_path)
    f1 = history.take("full")
    assert verify_backup(f1).ok  # the newest verified full from now on
    i1 = history.take("incremental", f1)
    d1 = history.take("differential", f1)
    i2 = history.take("incremental", d1)
    i3 = history.take("incremental", i2)
    stray = backups / "blockchain_1000000000.db"  # a crash leftover without sidecar
    stray.write_bytes(b"half a backup")
    orphans = [backups / "blockchain_999.db.meta", backups / "blockchain_999.db.pages"]
    for orphan in orphans:
        orphan.write_bytes(b"left behind")
    before = snapshot_files(backups)
    doomed = [*files_of([i1, stray]), *orphans]
    caplog.set_level(logging.INFO, logger="dagvault")

    dry = prune_backups(backups, RetentionPolicy(keep_last=1), dry_run=True)

    assert snapshot_files(backups) == before  # nothing deleted, not even the orphans
    assert not [r for r in caplog.records if "🧹" in r.getMessage()]
    assert dry.dry_run and dry.removed_files == []
    assert dry.bytes_freed == sum(len(before[p.name]) for p in doomed)
    assert reasons_of(dry.plan) == {
        i3.name: ("keep-last 1",),
        i2.name: (f"needed by {i3.name}",),
        d1.name: (f"needed by {i2.name}",),
        i1.name: ("matches no keep rule",),
        f1.name: (f"needed by {d1.name}", "newest verified full backup"),
        stray.name: ("no readable metadata; only keep-last keeps such a file",),
    }

    real = prune_backups(backups, RetentionPolicy(keep_last=1))

    assert [d.to_json() for d in real.plan.decisions] == [d.to_json() for d in dry.plan.decisions]
    assert real.removed_files == [str(p) for p in doomed]  # sidecar, page cache, data; orphans
    assert real.bytes_freed == dry.bytes_freed
    assert f"🧹 Cleaned up {len(doomed)} old backup files, freed {real.bytes_freed} bytes" in [
        r.getMessage() for r in caplog.records
    ]
    assert [e.path for e in list_backups(backups)] == [i3, i2, d1, f1]
    assert hidden_leftovers(backups) == []
    history.assert_restorable([i3, i2, d1, f1])

    # New backups chain onto what was kept; a second prune drops the old branch.
    f2 = history.take("full")
    d2 = history.take("differential", f2)
    i4 = history.take("incremental", d2)
    result = prune_backups(backups, RetentionPolicy(keep_last=1))
    assert [e.path for e in result.plan.remove] == [i3, i2, d1]
    assert reasons_of(result.plan)[f1.name] == ("newest verified full backup",)
    assert not any(p.exists() for p in (i3, i2, d1, cache_path(i2), meta_path(d1)))
    history.assert_restorable([i4, d2, f2, f1])

    # The restores above verified (and recorded) i4, d2 and f2: f1 is no longer needed, and
    # cleanup --keep is chain-aware as well.
    assert read_meta(i4).verification.status == "verified"
    result = cleanup_old_backups(backups, keep=1)
    assert reasons_of(result.plan) == {
        i4.name: ("among the newest 1", "newest verified backup"),
        d2.name: (f"needed by {i4.name}",),
        f2.name: (f"needed by {d2.name}", "newest verified full backup"),
        f1.name: ("older than the newest 1",),
    }
    assert not f1.exists() and not meta_path(f1).exists() and not cache_path(f1).exists()
    history.assert_restorable([i4, d2, f2])


def test_prune_refuses_an_empty_policy_and_a_busy_directory(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    taken = [Path(create_backup(ledger, backups).backup_path) for _ in range(2)]
    before = snapshot_files(backups)
    with pytest.raises(ConfigError):
        prune_backups(backups, RetentionPolicy())
    with pytest.raises(ConfigError):
        prune_backups(backups, RetentionPolicy(keep_last=0), default_keep_last=5)
    with lock.hold(backups, "backup", shared=True), pytest.raises(OperationInProgress) as caught:
        prune_backups(backups, RetentionPolicy(keep_last=1))
    assert caught.value.exit_code == 5 and "prune" in caught.value.message
    assert snapshot_files(backups) == before
    # The default keep-last applies to an unset policy.
    result = prune_backups(backups, RetentionPolicy(), default_keep_last=1)
    assert [e.path for e in result.plan.keep] == [taken[1]]
    assert not taken[0].exists()


def test_prune_of_an_absent_directory_does_nothing(tmp_path: Path) -> None:
    result = prune_backups(tmp_path / "absent", RetentionPolicy(keep_daily=7))
    assert result.removed_files == [] and result.plan.decisions == []
    with pytest.raises(ConfigError):
        prune_backups(tmp_path / "absent", RetentionPolicy())
    assert list(tmp_path.iterdir()) == []  # not even a lock file
