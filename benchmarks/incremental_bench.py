"""Incremental backups on the benchmark ledger: size, time, restore of a chain, compression.

One run, on a scratch copy of the cached 200k-transaction ledger of ``backup_bench`` (the
cached file is never written to):

1. full backups (median of 3) — the reference time;
2. 1% more rows (2000 transactions appended: 2.4% of the pages, as the random-key
   indexes spread the inserts) and an incremental — the first after the full, which also
   hashes the full's pages once (no cache yet);
3. nine more rounds of ~1% of the pages changed (0.4% more rows appended, or 1% of the
   rows updated, alternating) and an incremental each: steady-state time and size;
4. restore of the full alone vs. restore of full + 10 incrementals, each into a new
   file (median of 3, alternating), with a content-digest check of the chain's restore;
5. compression: a compressed full, and a compressed delta against an uncompressed one
   for the same change from the same base state.

Every create_backup / restore_backup call is timed whole; the steps inside (snapshot
copy, page digests, delta write, checksum, ...) are timed by wrapping the functions of
dagvault that implement them, which costs microseconds per call.

    python -m benchmarks.incremental_bench [--transactions N] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks.backup_bench import DEFAULT_WORKDIR, SEED, ensure_ledger

MB = 1e6
CHANGE_ROWS_SHARE = 0.01  # the first round appends, then every other round updates 1% of rows
APPEND_ROWS_SHARE = 0.004  # later appends: 0.4% more rows change ~1% of the pages
TARGET_SIZE = 0.02  # incremental <= 2% of the database
TARGET_TIME = 0.35  # incremental <= 0.35x the full backup's time
TARGET_RESTORE = 1.5  # full + 10 incrementals <= 1.5x the full alone
RESTORES = 3  # alternating restores of each kind; the median is reported


# ---------------------------------------------------------------------------- timing


class Steps:
    """Cumulative seconds per step while ``watch`` is active (wrapped module functions)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def watch(self, targets: Sequence[tuple[ModuleType, str, str]]) -> Iterator[Steps]:
        originals = []
        for module, attr, label in targets:
            original = getattr(module, attr)
            originals.append((module, attr, original))
            setattr(module, attr, self._timed(original, label))
        try:
            yield self
        finally:
            for module, attr, original in reversed(originals):
                setattr(module, attr, original)

    def _timed(self, function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        return wrapper


def backup_targets() -> list[tuple[ModuleType, str, str]]:
    from dagvault import backup

    # No label nests inside another, so "other" (the rest of the call) is exact.
    return [
        (backup, "find_base", "find base (+ hash its pages once, if uncached)"),
        (backup, "_pinned_delta", "read in place (pin, hash every page, copy the changed)"),
        (backup, "snapshot_to_file", "snapshot copy (backup API)"),
        (backup, "_store_full", "store full ([compress,] SHA3-256, fsync)"),
        (backup, "_store_delta", "store delta (write [compressed], fsync, SHA3-256)"),
        (backup, "publish", "publish"),
        (backup, "write_meta", "write .meta"),
        (backup, "discard", "remove the temp image"),
    ]


def restore_targets() -> list[tuple[ModuleType, str, str]]:
    from dagvault import chain, restore, verify

    return [
        (verify, "sha3_256_file", "SHA3-256 of the backup file"),
        (verify, "check_files", "SHA3-256 of the chain's other files (overlaps the rebuild)"),
        (chain, "shutil", "rebuild: copy the full"),
        (chain, "apply_delta", "rebuild: apply deltas"),
        (chain.pages, "page_digests", "rebuild: page digests (image proof)"),
        (verify, "_check_database", "integrity_check + row counts"),
        (restore, "_copy_file", "copy into the target (backup API)"),
        (restore, "_post_check", "quick_check + row counts"),
    ]


@dataclass
class Timed:
    seconds: float
    steps: dict[str, float]
    info: Any = None


def timed_backup(db: Path, directory: Path, kind: str, compression: bool = False) -> Timed:
    from dagvault.backup import create_backup

    steps = Steps()
    with steps.watch(backup_targets()):
        started = time.perf_counter()
        info = create_backup(db, directory, kind=kind, compression=compression)
        seconds = time.perf_counter() - started
    return Timed(seconds, dict(steps.seconds), info)


class _ShutilProxy:
    """Stands in for ``dagvault.chain.shutil`` so that only its copyfile is timed."""

    def __init__(self, steps: Steps) -> None:
        self.copyfile = steps._timed(shutil.copyfile, "rebuild: copy the full")

    def __getattr__(self, name: str) -> Any:
        return getattr(shutil, name)


def timed_restore(backup: Path, target: Path) -> Timed:
    from dagvault import chain
    from dagvault.restore import restore_backup

    steps = Steps()
    targets = [t for t in restore_targets() if t[1] != "shutil"]
    original_shutil = chain.shutil
    chain.shutil = _ShutilProxy(steps)  # type: ignore[assignment]
    try:
        with steps.watch(targets):
            started = time.perf_counter()
            result = restore_backup(backup, target)
            seconds = time.perf_counter() - started
    finally:
        chain.shutil = original_shutil
    assert result.success
    return Timed(seconds, dict(steps.seconds), result)


# ---------------------------------------------------------------------------- the ledger


def remove_db(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def scratch_copy(workdir: Path, transactions: int, dest: Path) -> Path:
    """A private, writable copy of the cached ledger (built first if it is not cached)."""
    cached = workdir / f"ledger-{transactions}-seed{SEED}.db"
    stamp = cached.with_name(cached.name + ".complete")
    if not (stamp.exists() and cached.exists()):
        cached = ensure_ledger(workdir, transactions, rebuild=False)
    else:
        print(f"reusing {cached} ({cached.stat().st_size / MB:.0f} MB), copying it to {dest}")
    wal = Path(f"{cached}-wal")
    started = time.perf_counter()
    if not wal.exists() or wal.stat().st_size == 0:
        shutil.copyfile(cached, dest)  # checkpointed: the main file is the whole database
    else:  # committed frames in the WAL: a consistent copy through SQLite, read-only
        with (
            closing(sqlite3.connect(f"file:{cached}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(dest)) as out,
        ):
            src.backup(out)
    with closing(sqlite3.connect(dest, isolation_level=None)) as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        count = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
    print(f"  copy: {time.perf_counter() - started:.1f} s, {count:,} transactions")
    return dest


def append_transactions(db: Path, rows: int) -> None:
    from dagvault.sample import create_sample_ledger

    create_sample_ledger(db, rows, seed=SEED, append=True)


def update_transactions(db: Path, rows: int, seed: int) -> None:
    """Rewrite amount and fee of ``rows`` random transactions (1% of the rows)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        top = conn.execute("SELECT max(id) FROM transactions").fetchone()[0]
        ids = random.Random(seed).sample(range(1, top + 1), rows)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE transactions SET amount = amount + 1, fee = fee + 1 WHERE id = ?",
            [(i,) for i in ids],
        )
        conn.execute("COMMIT")


def live_digest(db: Path) -> dict[str, str]:
    from dagvault.digest import database_digest

    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return database_digest(conn)


# ---------------------------------------------------------------------------- the run


@dataclass
class Round:
    change: str
    seconds: float
    size: int
    db_size: int
    changed_pages: int
    page_count: int
    page_size: int
    steps: dict[str, float]

    @property
    def size_share(self) -> float:
        return self.size / self.db_size

    @property
    def page_share(self) -> float:
        return self.changed_pages / self.page_count


@dataclass
class Report:
    db_size: int = 0
    page_count: int = 0
    transactions: int = 0
    fulls: list[Timed] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    restore_full: list[Timed] = field(default_factory=list)
    restore_chain: list[Timed] = field(default_factory=list)
    chain_digest_ok: bool | None = None
    compressed_full: Timed | None = None
    plain_full_size: int = 0
    delta_plain: Timed | None = None
    delta_compressed: Timed | None = None
    first_compressed_delta: Timed | None = None
    load: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def full_seconds(self) -> float:
        return statistics.median(t.seconds for t in self.fulls)


def make_round(change: str, timed: Timed, db: Path) -> Round:
    info = timed.info
    if info.backup_type != "Incremental":
        raise SystemExit(
            f"expected an incremental, got {info.backup_type}: "
            f"{info.metadata.get('full_backup_reason')}"
        )
    return Round(
        change=change,
        seconds=timed.seconds,
        size=info.file_size,
        db_size=db.stat().st_size,
        changed_pages=info.changed_pages,
        page_count=info.page_count,
        page_size=info.page_size,
        steps=timed.steps,
    )


def run(workdir: Path, transactions: int, scratch: Path, *, check: bool) -> Report:
    report = Report(load=[os.getloadavg()])
    live = scratch_copy(workdir, transactions, scratch / "live.db")
    chain_dir, other_dir = scratch / "chain", scratch / "other"
    rows = int(transactions * CHANGE_ROWS_SHARE)

    print("full backups (3) ...", flush=True)
    for n in range(3):
        directory = chain_dir if n == 2 else other_dir / f"full-{n}"
        report.fulls.append(timed_backup(live, directory, "full"))
        print(f"  {report.fulls[-1].seconds:.2f} s", flush=True)
        if n < 2:
            shutil.rmtree(directory)
    full = report.fulls[-1].info
    report.db_size, report.page_count = live.stat().st_size, full.page_count
    report.transactions = full.total_transactions

    print("10 rounds of a change + incremental ...", flush=True)
    for n in range(10):
        if n % 2 == 0:
            appended = rows if n == 0 else int(transactions * APPEND_ROWS_SHARE)
            change = f"append {appended} tx"
            append_transactions(live, appended)
        else:
            change = f"update {rows} rows"
            update_transactions(live, rows, seed=n)
        report.rounds.append(make_round(change, timed_backup(live, chain_dir, "incremental"), live))
        r = report.rounds[-1]
        print(
            f"  round {n + 1} ({change}): {r.seconds:.2f} s, {r.size / MB:.1f} MB "
            f"({r.size_share:.2%} of the db), {r.changed_pages} pages changed "
            f"({r.page_share:.2%})",
            flush=True,
        )
    newest = _newest(chain_dir)
    expected = live_digest(live) if check else None

    print(f"restores into a new file (full alone, full + 10 incrementals; {RESTORES} each) ...")
    for n in range(RESTORES):
        pairs = ((Path(full.backup_path), report.restore_full), (newest, report.restore_chain))
        for backup, results in pairs:
            target = scratch / f"restored-{n}.db"
            results.append(timed_restore(backup, target))
            print(f"  {backup.name}: {results[-1].seconds:.2f} s", flush=True)
            if check and backup == newest and n == 0:
                report.chain_digest_ok = live_digest(target) == expected
                print(f"  content digest of the chain's restore matches: {report.chain_digest_ok}")
            remove_db(target)

    print("compression ...", flush=True)
    compressed_dir = scratch / "compressed"
    report.compressed_full = timed_backup(live, compressed_dir, "full", compression=True)
    report.plain_full_size = full.file_size
    print(f"  compressed full: {report.compressed_full.seconds:.2f} s")
    # Bring both directories' newest backup to the same state (this also caches the
    # compressed full's page digests), then time both deltas for one more change.
    append_transactions(live, rows)
    timed_backup(live, chain_dir, "incremental")
    report.first_compressed_delta = timed_backup(live, compressed_dir, "incremental", True)
    update_transactions(live, rows, seed=99)
    report.delta_plain = timed_backup(live, chain_dir, "incremental")
    report.delta_compressed = timed_backup(live, compressed_dir, "incremental", True)
    for timed in (report.delta_plain, report.delta_compressed):
        assert timed.info.backup_type == "Incremental"
    assert (
        report.delta_plain.info.metadata["image_digest"]
        == report.delta_compressed.info.metadata["image_digest"]
    )
    report.load.append(os.getloadavg())
    return report


def _newest(directory: Path) -> Path:
    from dagvault.catalog import list_backups

    return list_backups(directory)[0].path


# ---------------------------------------------------------------------------- output


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def steps_line(steps: dict[str, float], total: float) -> str:
    parts = [f"{label} {seconds:.2f}" for label, seconds in steps.items() if seconds >= 0.01]
    parts.append(f"other {max(total - sum(steps.values()), 0):.2f}")
    return "; ".join(parts)


def median_steps(samples: Sequence[dict[str, float]]) -> dict[str, float]:
    labels = dict.fromkeys(label for sample in samples for label in sample)
    return {label: statistics.median(s.get(label, 0.0) for s in samples) for label in labels}


def print_report(report: Report) -> None:
    full_s = report.full_seconds
    first, steady = report.rounds[0], report.rounds[1:]
    appends = [r for r in steady if r.change.startswith("append")]
    updates = [r for r in steady if r.change.startswith("update")]
    steady_s = statistics.median(r.seconds for r in steady)
    worst_size = max(r.size_share for r in steady)  # the rounds where ~1% of pages change
    overhead = max(r.size / (r.changed_pages * r.page_size) for r in report.rounds)
    restore_full = statistics.median(t.seconds for t in report.restore_full)
    restore_chain = statistics.median(t.seconds for t in report.restore_chain)
    cf = report.compressed_full
    dp, dc = report.delta_plain, report.delta_compressed
    assert cf is not None and dp is not None and dc is not None

    def group(rounds: list[Round]) -> str:
        return (
            f"{statistics.median(r.seconds for r in rounds):.2f} s "
            f"({statistics.median(r.seconds for r in rounds) / full_s:.2f}x); "
            f"{statistics.median(r.size for r in rounds) / MB:.1f} MB = "
            f"{statistics.median(r.size_share for r in rounds):.2%} of the db; "
            f"{statistics.median(r.page_share for r in rounds):.2%} of the pages changed"
        )

    print()
    print(
        f"Ledger: {report.transactions:,} transactions, {report.db_size / MB:.0f} MB, "
        f"{report.page_count:,} pages of 4 KiB. {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average "
        f"{report.load[0][0]:.1f} at the start, {report.load[-1][0]:.1f} at the end."
    )
    print()
    print("| measurement | result | target | |")
    print("|---|---|---|---|")
    print(f"| full backup (median of 3) | {full_s:.2f} s | | |")
    print(
        f"| incremental after +1% rows, first after the full (hashes the full's pages once) "
        f"| {first.seconds:.2f} s ({first.seconds / full_s:.2f}x); {first.size / MB:.1f} MB = "
        f"{first.size_share:.2%} of the db; {first.page_share:.2%} of the pages changed | | |"
    )
    for rounds, what in ((appends, "+0.4% rows appended"), (updates, "1% of rows updated")):
        print(
            f"| incremental, steady state, {what} (median of {len(rounds)}) | {group(rounds)} | | |"
        )
    print(
        f"| incremental size where ~1% of the pages changed, largest of 9 | {worst_size:.2%} of "
        f"the db | <= {TARGET_SIZE:.0%} | {verdict(worst_size <= TARGET_SIZE)} |"
    )
    print(f"| stored bytes / changed pages' bytes, largest of the 10 | {overhead:.4f} | | |")
    print(
        f"| incremental time, steady state (median of 9) | {steady_s:.2f} s = "
        f"{steady_s / full_s:.2f}x the full | <= {TARGET_TIME}x "
        f"| {verdict(steady_s / full_s <= TARGET_TIME)} |"
    )
    print(
        f"| restore of the full into a new file (median of {RESTORES}) | {restore_full:.2f} s | | |"
    )
    ratio = restore_chain / restore_full
    print(
        f"| restore of full + 10 incrementals (median of {RESTORES}) | {restore_chain:.2f} s = "
        f"{ratio:.2f}x the full's | <= {TARGET_RESTORE}x | {verdict(ratio <= TARGET_RESTORE)} |"
    )
    if report.chain_digest_ok is not None:
        print(
            f"| content digest of the chain's restore = live database | "
            f"{'yes' if report.chain_digest_ok else '**NO**'} | | |"
        )
    print(
        f"| compressed full (zstd -3) | {cf.seconds:.2f} s = {cf.seconds / full_s:.2f}x the "
        f"plain full's time; {cf.info.file_size / MB:.0f} MB = "
        f"{cf.info.file_size / report.plain_full_size:.1%} of its size | | |"
    )
    print(
        f"| compressed delta (1% rows updated) | {dc.seconds:.2f} s vs {dp.seconds:.2f} s "
        f"plain ({dc.seconds / dp.seconds:.2f}x); {dc.info.file_size / MB:.1f} MB vs "
        f"{dp.info.file_size / MB:.1f} MB ({dc.info.file_size / dp.info.file_size:.1%}) | | |"
    )
    if report.first_compressed_delta is not None:
        fc = report.first_compressed_delta
        print(
            f"| first delta after a compressed full (decompresses and hashes the full once) "
            f"| {fc.seconds:.2f} s | | |"
        )
    print()
    print("Where the time goes (seconds; steady-state incremental and restores are medians):")
    print()
    print(f"- full backup: {steps_line(median_steps([t.steps for t in report.fulls]), full_s)}")
    print(f"- first incremental: {steps_line(first.steps, first.seconds)}")
    print(f"- steady incremental: {steps_line(median_steps([r.steps for r in steady]), steady_s)}")
    print(
        "- restore full: "
        + steps_line(median_steps([t.steps for t in report.restore_full]), restore_full)
    )
    print(
        "- restore full + 10 incrementals: "
        + steps_line(median_steps([t.steps for t in report.restore_chain]), restore_chain)
    )
    print()
    print(json.dumps({"full_s": full_s, "steady_incr_s": steady_s, "restore_ratio": ratio}))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.incremental_bench",
        description="Incremental backups: size, time, chain restore and compression.",
    )
    parser.add_argument("--transactions", type=int, default=200_000)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"cache of sample ledgers and scratch space (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--no-check", dest="check", action="store_false", help="skip the content-digest check"
    )
    args = parser.parse_args(argv)
    if args.transactions < 1000:
        parser.error("--transactions must be >= 1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = workdir / f"incr-scratch-{os.getpid()}"
    scratch.mkdir()
    try:
        report = run(workdir, args.transactions, scratch, check=args.check)
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print_report(report)
    return 0 if report.chain_digest_ok is not False else 1


if __name__ == "__main__":
    sys.exit(main())
