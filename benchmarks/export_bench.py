"""dagvault's Parquet export against what an analyst would write by hand with pandas.

The baseline, per table: ``pandas.read_sql("SELECT * FROM t", sqlite3_connection)`` then
``DataFrame.to_parquet(path, compression="zstd")`` (pyarrow engine). dagvault's side is
``dagvault.export.export_database("parquet", ...)`` of all tables: one consistent snapshot,
types from the stored values, transactions ordered by timestamp, zstd, fsync, SHA3-256 of
every file and a checked manifest.

Every measurement runs in a fresh child process, timed like a command from the outside:
wall time from spawn to exit (interpreter start and imports included for both sides; the
export proper, after the top-level imports, is also shown), peak RSS as the child's own
``ru_maxrss`` and CPU time (user + system, all threads) as reported by wait4(2). Both sides
alternate round by round and the database file is read once beforehand, so both see the
same warm page cache. The sample ledgers are built once into the work directory and reused
(the same cache as ``benchmarks.backup_bench``).

    python -m benchmarks.export_bench [--transactions N] [--scale K] [--rounds R]
                                      [--workdir DIR] [--skip-large] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = PROJECT / ".demo" / "bench"  # .demo/ is git-ignored
SEED = 42
MIB = 1024 * 1024
TOOLS = ("baseline", "dagvault")
LABELS = {
    "baseline": "pandas `read_sql` + `to_parquet(zstd)`",
    "dagvault": "dagvault `export --format parquet`",
}
TARGET_RSS_MIB = 500


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float  # the whole child process, spawn to exit
    export_seconds: float  # the export proper, after the top-level imports
    cpu_seconds: float  # user + system time of the child, all threads
    peak_rss_kib: int
    rows: dict[str, int]
    output_bytes: int


@dataclass(frozen=True)
class Dataset:
    path: Path
    transactions: int
    file_size: int
    row_counts: dict[str, int]


class BenchError(Exception):
    """A problem the user must fix (bad work directory, a failed self-check); exit code 2."""


# ---------------------------------------------------------------------------- child side


def _child_baseline(source: Path, out: Path) -> dict[str, int]:
    import pandas as pd  # the analyst's tool; imported before the clock starts (see below)

    out.mkdir()
    rows = {}
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            frame = pd.read_sql(f"SELECT * FROM {quoted}", conn)
            frame.to_parquet(out / f"{table}.parquet", compression="zstd")
            rows[table] = len(frame)
            del frame
    finally:
        conn.close()
    return rows


def _child_dagvault(source: Path, out: Path) -> dict[str, int]:
    from dagvault.export import export_database

    result = export_database("parquet", database=source, out=out)
    return result.row_counts


def run_child(tool: str, source: Path, out: Path, report: Path) -> None:
    """One measured export; writes a JSON record to ``report`` for the parent."""
    # Top-level imports happen before the clock starts, for both sides alike.
    if tool == "baseline":
        import pandas  # noqa: F401
    else:
        import dagvault.export  # noqa: F401
    runner = _child_baseline if tool == "baseline" else _child_dagvault
    started = time.perf_counter()
    rows = runner(source, out)
    seconds = time.perf_counter() - started
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    report.write_text(json.dumps({"seconds": seconds, "rows": rows, "output_bytes": total}))


# --------------------------------------------------------------------------- parent side


def _remove_db(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _row_counts(path: Path) -> dict[str, int] | None:
    try:
        # rw: the last read-write connection to close also removes the -wal/-shm files.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
        try:
            names = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            return {
                name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
                for name in names
            }
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def ensure_ledger(workdir: Path, transactions: int, *, rebuild: bool) -> Dataset:
    """The sample ledger of ``transactions`` rows, built once and then reused.

    A stamp file written after a complete build tells a reusable ledger from one left
    half-built by an interrupted run (same convention as ``benchmarks.backup_bench``).
    """
    from dagvault.sample import create_sample_ledger

    path = workdir / f"ledger-{transactions}-seed{SEED}.db"
    stamp = path.with_name(path.name + ".complete")
    counts = None if rebuild or not stamp.exists() else _row_counts(path)
    if counts is not None and counts.get("transactions") == transactions:
        print(f"reusing {path} ({path.stat().st_size / 1e6:.0f} MB)", flush=True)
    else:
        stamp.unlink(missing_ok=True)
        _remove_db(path)
        print(f"building {path} ({transactions:,} transactions) ...", flush=True)
        stats = create_sample_ledger(path, transactions, seed=SEED)
        stamp.write_text(json.dumps({"transactions": stats.transactions, "seed": SEED}))
        print(f"  {stats.file_size / 1e6:.0f} MB in {stats.seconds:.1f} s", flush=True)
        counts = _row_counts(path)
        assert counts is not None
    return Dataset(path, transactions, path.stat().st_size, counts)


def warm_page_cache(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(16 * MIB):
            pass


def measure_once(tool: str, dataset: Dataset, scratch: Path) -> Run:
    out = scratch / f"{tool}-out"
    report = scratch / f"{tool}-report.json"
    shutil.rmtree(out, ignore_errors=True)
    report.unlink(missing_ok=True)
    started = time.perf_counter()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.export_bench",
            "--child",
            tool,
            str(dataset.path),
            str(out),
            str(report),
        ],
        cwd=PROJECT,
    )
    # wait4 gives this child's own rusage: ru_maxrss is its peak RSS in KiB (Linux).
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise BenchError(f"{tool} child failed with exit code {child.returncode}")
    record = json.loads(report.read_text())
    run = Run(
        tool,
        seconds,
        record["seconds"],
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
        record["rows"],
        record["output_bytes"],
    )
    self_check(run, dataset, out)
    shutil.rmtree(out, ignore_errors=True)
    report.unlink(missing_ok=True)
    return run


def self_check(run: Run, dataset: Dataset, out: Path) -> None:
    """Both outputs hold every row of every table (read back from the Parquet footers)."""
    import pyarrow.parquet as pq

    found = {f.stem: pq.ParquetFile(f).metadata.num_rows for f in out.glob("*.parquet")}
    if found != dataset.row_counts or run.rows != dataset.row_counts:
        raise BenchError(
            f"{run.tool}: rows written {found} / reported {run.rows} differ from the "
            f"database's {dataset.row_counts}"
        )


def measure(dataset: Dataset, scratch: Path, rounds: int) -> dict[str, list[Run]]:
    warm_page_cache(dataset.path)
    runs: dict[str, list[Run]] = {tool: [] for tool in TOOLS}
    for round_no in range(rounds):
        # Alternate who goes first so a trend in machine load does not favour one side.
        order = TOOLS if round_no % 2 == 0 else TOOLS[::-1]
        for tool in order:
            run = measure_once(tool, dataset, scratch)
            runs[tool].append(run)
            print(
                f"  round {round_no + 1}/{rounds} {tool:8s}: {run.seconds:6.2f} s "
                f"(export proper {run.export_seconds:6.2f} s, CPU {run.cpu_seconds:6.2f} s), "
                f"peak RSS {run.peak_rss_kib / 1024:7.1f} MiB, "
                f"{run.output_bytes / 1e6:.0f} MB written",
                flush=True,
            )
    return runs


def _median_seconds(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def _median_export_seconds(runs: list[Run]) -> float:
    return statistics.median(run.export_seconds for run in runs)


def _median_cpu_seconds(runs: list[Run]) -> float:
    return statistics.median(run.cpu_seconds for run in runs)


def _peak_mib(runs: list[Run]) -> float:
    return max(run.peak_rss_kib for run in runs) / 1024


def report(results: list[tuple[Dataset, dict[str, list[Run]]]], rounds: int) -> bool:
    print()
    print(
        "| dataset | tool | seconds (median) | of which export | CPU seconds "
        "| peak RSS MiB (max) | time vs baseline | memory vs baseline |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    met = True
    for dataset, runs in results:
        base_s, base_m = _median_seconds(runs["baseline"]), _peak_mib(runs["baseline"])
        name = f"{dataset.transactions:,} tx ({dataset.file_size / 1e9:.2f} GB)"
        for tool in TOOLS:
            seconds, peak = _median_seconds(runs[tool]), _peak_mib(runs[tool])
            print(
                f"| {name} | {LABELS[tool]} | {seconds:.2f} "
                f"| {_median_export_seconds(runs[tool]):.2f} "
                f"| {_median_cpu_seconds(runs[tool]):.2f} | {peak:.0f} "
                f"| {seconds / base_s:.2f}x | {peak / base_m:.2f}x |"
            )
        ours_s, ours_m = _median_seconds(runs["dagvault"]), _peak_mib(runs["dagvault"])
        met = met and ours_s < base_s and ours_m < TARGET_RSS_MIB
    print()
    print(
        f"Median of {rounds} alternating round(s), each in a fresh process, page cache warm; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}."
    )
    verdict = "met" if met else "NOT met"
    print(
        f"Target (dagvault faster than the baseline and under {TARGET_RSS_MIB} MiB at every "
        f"size): {verdict}"
    )
    return met


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.export_bench",
        description="Time dagvault's Parquet export against pandas read_sql + to_parquet.",
    )
    parser.add_argument(
        "--transactions", type=int, default=200_000, help="smaller ledger (default 200000)"
    )
    parser.add_argument(
        "--scale", type=int, default=4, help="the larger ledger is this many times bigger (4)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"cache of sample ledgers and scratch space (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument("--skip-large", action="store_true", help="measure the smaller only")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the sample ledgers")
    parser.add_argument(
        "--child", nargs=4, metavar=("TOOL", "SRC", "OUT", "REPORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.transactions < 4 or args.rounds < 1 or args.scale < 1:
        parser.error("--transactions must be >= 4, --rounds and --scale >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        tool, source, out, report_path = args.child
        if tool not in TOOLS:
            raise SystemExit(f"unknown tool {tool}")
        run_child(tool, Path(source), Path(out), Path(report_path))
        return 0
    workdir: Path = args.workdir.absolute()
    sizes = [args.transactions] + ([] if args.skip_large else [args.transactions * args.scale])
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        scratch = workdir / f"export-scratch-{os.getpid()}"
        scratch.mkdir()
        try:
            results = []
            for transactions in sizes:
                dataset = ensure_ledger(workdir, transactions, rebuild=args.rebuild)
                print(f"measuring {transactions:,} transactions:", flush=True)
                results.append((dataset, measure(dataset, scratch, args.rounds)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(results, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
