"""``make bench``: dagvault's full backup against ``sqlite3 .backup`` + ``openssl dgst``.

The baseline is what an operator would script by hand: ``sqlite3 SRC ".backup DEST"``
followed by ``openssl dgst -sha3-256 DEST``, timed together. dagvault's side is
``dagvault.backup.create_backup`` (snapshot, row counts, SHA3-256, fsync, publish, sidecar),
timed in a fresh child process per run so that each run's peak RSS (VmHWM) is its own.

Both sides run against the same sample ledger (built once, then reused from the work
directory), alternate round by round so that drifting machine load hits both equally, and
start with one unmeasured warm-up each so both read a warm page cache. The page cache is
never dropped: both sides are measured equally warm. The same is repeated on a ledger
4x smaller to show that dagvault's memory does not grow with the database.

    python -m benchmarks.backup_bench [--transactions N] [--rounds R] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
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
HASH_CHUNK = 4 * 1024 * 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class DagvaultRun:
    seconds: float
    peak_rss_kib: int  # VmHWM of the child: interpreter + imports + the backup itself
    start_rss_kib: int  # VmRSS after imports, just before the backup started
    checksum: str
    backup_path: str
    file_size: int


@dataclass(frozen=True)
class Result:
    transactions: int
    file_size: int
    baseline: list[float]
    dagvault: list[DagvaultRun]

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline)

    @property
    def dagvault_median(self) -> float:
        return statistics.median(run.seconds for run in self.dagvault)

    @property
    def ratio(self) -> float:
        return self.dagvault_median / self.baseline_median

    @property
    def peak_rss_kib(self) -> int:
        return max(run.peak_rss_kib for run in self.dagvault)

    @property
    def start_rss_kib(self) -> int:
        return max(run.start_rss_kib for run in self.dagvault)


class BenchError(Exception):
    """A problem the user must fix (missing tool, bad work directory); exit code 2."""


# ---------------------------------------------------------------------------- child side


def _proc_status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def run_child(source: Path, backup_dir: Path) -> None:
    """One measured create_backup; prints a JSON line for the parent."""
    from dagvault.backup import create_backup  # imported before the RSS baseline is taken

    start_rss = _proc_status_kib("VmRSS") or 0
    started = time.perf_counter()
    info = create_backup(source, backup_dir)
    seconds = time.perf_counter() - started
    # VmHWM is exact; ru_maxrss (also KiB on Linux) is the fallback off Linux.
    peak = _proc_status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record = {
        "seconds": seconds,
        "peak_rss_kib": peak,
        "start_rss_kib": start_rss,
        "checksum": info.checksum,
        "backup_path": info.backup_path,
        "file_size": info.file_size,
    }
    print(json.dumps(record), flush=True)


# --------------------------------------------------------------------------- parent side


def require_tools() -> tuple[str, str]:
    """Paths of sqlite3 and openssl, proven to work (openssl must know SHA3-256)."""
    found = {name: shutil.which(name) for name in ("sqlite3", "openssl")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise BenchError(
            f"the baseline needs {' and '.join(missing)} on PATH "
            "(Debian/Ubuntu: apt-get install sqlite3 openssl)"
        )
    sqlite_cli, openssl = found["sqlite3"], found["openssl"]
    assert sqlite_cli is not None and openssl is not None
    probe = subprocess.run(
        [openssl, "dgst", "-sha3-256", os.devnull], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise BenchError(
            f"{openssl} cannot compute SHA3-256 (OpenSSL >= 1.1.1 needed): {probe.stderr.strip()}"
        )
    return sqlite_cli, openssl


def tool_version(command: Sequence[str]) -> str:
    out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    return out.strip().split("\n")[0][:60]


def _remove_db(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _transaction_count(path: Path) -> int | None:
    try:
        # rw: the last read-write connection to close also removes the -wal/-shm files.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def ensure_ledger(workdir: Path, transactions: int, *, rebuild: bool) -> Path:
    """The sample ledger of ``transactions`` rows, built once and then reused.

    A stamp file written after a complete build tells a reusable ledger from one left
    half-built by an interrupted run.
    """
    from dagvault.sample import create_sample_ledger

    path = workdir / f"ledger-{transactions}-seed{SEED}.db"
    stamp = path.with_name(path.name + ".complete")
    if not rebuild and stamp.exists() and _transaction_count(path) == transactions:
        print(f"reusing {path} ({path.stat().st_size / 1e6:.0f} MB)")
        return path
    stamp.unlink(missing_ok=True)
    _remove_db(path)
    print(f"building {path} ({transactions:,} transactions) ...", flush=True)
    stats = create_sample_ledger(path, transactions, seed=SEED)
    stamp.write_text(json.dumps({"transactions": stats.transactions, "seed": SEED}))
    print(f"  {stats.file_size / 1e6:.0f} MB in {stats.seconds:.1f} s")
    return path


def run_baseline(sqlite_cli: str, openssl: str, source: Path, dest: Path) -> float:
    """Wall-clock seconds of ``sqlite3 .backup`` then ``openssl dgst -sha3-256``."""
    if "'" in str(dest):
        raise BenchError(f"work directory path must not contain a quote: {dest}")
    _remove_db(dest)
    started = time.perf_counter()
    # -init /dev/null: a developer's ~/.sqliterc must not change what is measured.
    subprocess.run(
        [sqlite_cli, "-batch", "-init", os.devnull, str(source), f".backup '{dest}'"],
        check=True,
        capture_output=True,
    )
    digest = subprocess.run(
        [openssl, "dgst", "-sha3-256", str(dest)], check=True, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if not re.search(r"= ?[0-9a-f]{64}$", digest.stdout.strip()):
        raise BenchError(f"unexpected openssl output: {digest.stdout!r}")
    _remove_db(dest)
    return seconds


def run_dagvault(source: Path, backup_dir: Path, *, keep: bool = False) -> DagvaultRun:
    """create_backup in a fresh interpreter; the backup is removed unless ``keep``."""
    shutil.rmtree(backup_dir, ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.backup_bench", "--child", str(source), str(backup_dir)],
        cwd=PROJECT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    run = DagvaultRun(**json.loads(proc.stdout.strip().splitlines()[-1]))
    if not keep:
        shutil.rmtree(backup_dir, ignore_errors=True)
    return run


def self_check(run: DagvaultRun) -> None:
    """The published backup is what dagvault claims: checksum, header, integrity."""
    path = Path(run.backup_path)
    started = time.perf_counter()
    digest = hashlib.sha3_256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    problems = []
    if digest.hexdigest() != run.checksum:
        problems.append(f"checksum {run.checksum} != sha3-256 of the file {digest.hexdigest()}")
    if path.stat().st_size != run.file_size:
        problems.append("file size differs from the recorded one")
    with open(path, "rb") as fh:
        header = fh.read(100)
    if header[18:20] != b"\x01\x01":
        problems.append(f"header bytes 18/19 are {list(header[18:20])}, not rollback-journal 1/1")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    if integrity != [("ok",)]:
        problems.append(f"integrity_check: {integrity[:3]}")
    if problems:
        raise SystemExit("SELF-CHECK FAILED: " + "; ".join(problems))
    print(
        "  self-check ok: sha3-256 of the stored bytes matches, header 18/19 = 1, "
        f"integrity_check ok ({time.perf_counter() - started:.1f} s)"
    )


def measure(
    tools: tuple[str, str], source: Path, workdir: Path, rounds: int, *, check: bool
) -> Result:
    sqlite_cli, openssl = tools
    baseline_dest = workdir / "baseline-out.db"
    backup_dir = workdir / "dagvault-out"
    print("  warm-up (not measured) ...", flush=True)
    run_baseline(sqlite_cli, openssl, source, baseline_dest)
    warm = run_dagvault(source, backup_dir, keep=check)
    if check:
        self_check(warm)
        shutil.rmtree(backup_dir, ignore_errors=True)
    baseline: list[float] = []
    dagvault: list[DagvaultRun] = []
    for round_no in range(rounds):
        # Alternate who goes first so a trend in machine load does not favour one side.
        if round_no % 2 == 0:
            baseline.append(run_baseline(sqlite_cli, openssl, source, baseline_dest))
            dagvault.append(run_dagvault(source, backup_dir))
        else:
            dagvault.append(run_dagvault(source, backup_dir))
            baseline.append(run_baseline(sqlite_cli, openssl, source, baseline_dest))
        print(
            f"  round {round_no + 1}/{rounds}: baseline {baseline[-1]:.3f} s, "
            f"dagvault {dagvault[-1].seconds:.3f} s "
            f"(peak RSS {dagvault[-1].peak_rss_kib / 1024:.1f} MiB)",
            flush=True,
        )
    return Result(
        transactions=_transaction_count(source) or 0,
        file_size=source.stat().st_size,
        baseline=baseline,
        dagvault=dagvault,
    )


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def report(results: list[Result], rounds: int) -> None:
    big, small = results
    print()
    print(f"Results (median of {rounds} rounds after one warm-up each; wall clock)")
    for res in results:
        print(
            f"  {res.transactions:,} tx ({res.file_size / 1e6:.0f} MB): "
            f"baseline {res.baseline_median:.3f} s (min {min(res.baseline):.3f}), "
            f"dagvault {res.dagvault_median:.3f} s "
            f"(min {min(run.seconds for run in res.dagvault):.3f}), "
            f"ratio dagvault/baseline {res.ratio:.2f}x; dagvault peak RSS "
            f"{_mib(res.peak_rss_kib)} ({_mib(res.start_rss_kib)} before the backup started)"
        )
    size_ratio = big.file_size / small.file_size
    rss_ratio = big.peak_rss_kib / small.peak_rss_kib
    print(
        f"  peak RSS {_mib(small.peak_rss_kib)} -> {_mib(big.peak_rss_kib)} "
        f"({rss_ratio:.2f}x) for a {size_ratio:.1f}x larger database"
    )
    verdict = "met" if big.ratio <= 1.0 else "NOT met"
    print(f"  target ratio <= 1.00x at {big.transactions:,} tx: {verdict} ({big.ratio:.2f}x)")
    print()
    print(
        "| ledger | file | `sqlite3 .backup` + `openssl dgst -sha3-256` "
        "| dagvault `create_backup` | ratio | dagvault peak RSS |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for res in results:
        print(
            f"| {res.transactions:,} tx | {res.file_size / 1e6:.0f} MB "
            f"| {res.baseline_median:.2f} s | {res.dagvault_median:.2f} s "
            f"| {res.ratio:.2f}x | {_mib(res.peak_rss_kib)} |"
        )
    print()
    print(
        f"Median of {rounds} alternating rounds after one warm-up each, page cache warm; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, load average {os.getloadavg()[0]:.2f} at the end."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.backup_bench",
        description="Time dagvault's full backup against sqlite3 .backup + openssl dgst.",
    )
    parser.add_argument(
        "--transactions", type=int, default=200_000, help="ledger size (default 200000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"cache of sample ledgers and scratch space (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument("--rebuild", action="store_true", help="regenerate the sample ledgers")
    parser.add_argument(
        "--no-check", dest="check", action="store_false", help="skip the backup self-check"
    )
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=None,
        help="exit 1 if the ratio at --transactions exceeds this (e.g. 1.0)",
    )
    parser.add_argument("--child", nargs=2, metavar=("SRC", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.transactions < 4 or args.rounds < 1:
        parser.error("--transactions must be >= 4 and --rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(Path(args.child[0]), Path(args.child[1]))
        return 0
    try:
        tools = require_tools()
        workdir: Path = args.workdir.absolute()
        workdir.mkdir(parents=True, exist_ok=True)
        print(
            f"sqlite3 CLI {tool_version([tools[0], '-version']).split()[0]}, "
            f"{' '.join(tool_version([tools[1], 'version']).split()[:2])}, "
            f"Python {platform.python_version()} with SQLite {sqlite3.sqlite_version}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        results = []
        for transactions in (args.transactions, args.transactions // 4):
            source = ensure_ledger(workdir, transactions, rebuild=args.rebuild)
            print(f"measuring {transactions:,} transactions:")
            results.append(measure(tools, source, workdir, args.rounds, check=args.check))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(results, args.rounds)
    if args.max_ratio is not None and results[0].ratio > args.max_ratio:
        print(f"ratio {results[0].ratio:.2f}x exceeds --max-ratio {args.max_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
