"""Load: writer processes commit at a high rate while full and incremental backups run
back to back. Writer errors must be zero; commit latency p50/p99 with and without backups
goes to the report (a ratio, never asserted: this machine's timings are too noisy).

CI runs a few seconds per phase; ``make stress`` a minute each.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import statistics
import time
from contextlib import closing
from pathlib import Path

from _helpers import integrity, query, spawn_python

from dagvault.backup import create_backup
from dagvault.retention import cleanup_old_backups
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_file
from faults._harness import STRESS, Figures

PHASE_SECONDS = 60.0 if STRESS else 4.0
WRITERS = 2

# Commits 1-20 rows of 300 bytes (a block of transactions) as fast as a node would, and
# reports each commit's latency from BEGIN IMMEDIATE to the end of COMMIT.
LATENCY_WRITER = r"""
import json, os, random, sqlite3, sys, time
db, stop, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
conn.execute("PRAGMA synchronous=NORMAL")
rng = random.Random(seed)
samples, errors = [], []
print("ready", flush=True)
while not os.path.exists(stop):
    rows = [(seed, rng.randbytes(300)) for _ in range(rng.randint(1, 20))]
    started = time.monotonic()
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO load_rows (writer, payload) VALUES (?, ?)", rows)
        conn.execute("UPDATE load_counter SET n = n + ?", (len(rows),))
        conn.execute("COMMIT")
        samples.append((started, time.monotonic() - started))
    except sqlite3.Error as exc:
        errors.append(f"{started}: {exc!r}")
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    time.sleep(0.002)
conn.close()
print(json.dumps({"samples": samples, "errors": errors}), flush=True)
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def test_writers_under_back_to_back_backups(tmp_path: Path, figures: Figures) -> None:
    live = tmp_path / "live.db"
    create_sample_ledger(live, 4_000, seed=21, nodes=16)
    with closing(sqlite3.connect(live, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE load_rows (id INTEGER PRIMARY KEY, writer INT, payload BLOB)")
        conn.execute("CREATE TABLE load_counter (n INTEGER NOT NULL)")
        conn.execute("INSERT INTO load_counter VALUES (0)")
    backups = tmp_path / "backups"
    stop = tmp_path / "stop"
    writers = [spawn_python(LATENCY_WRITER, str(live), str(stop), str(n)) for n in range(WRITERS)]
    kinds: list[str] = []
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
        idle_start = time.monotonic()
        time.sleep(PHASE_SECONDS)
        busy_start = time.monotonic()
        while time.monotonic() - busy_start < PHASE_SECONDS:
            kind = "incremental" if len(kinds) % 2 else "full"
            info = create_backup(live, backups, kind=kind)
            assert verify_file(Path(info.backup_path)).ok
            kinds.append(info.backup_type)
            cleanup_old_backups(backups, keep=2)  # bounded disk use; chains are kept whole
        busy_end = time.monotonic()
    finally:
        stop.touch()
        results = [
            json.loads(w.communicate(timeout=120)[0].strip().splitlines()[-1]) for w in writers
        ]
    errors = [e for r in results for e in r["errors"]]
    samples = [s for r in results for s in r["samples"]]
    idle = [lat for t, lat in samples if idle_start <= t < busy_start]
    busy = [lat for t, lat in samples if busy_start <= t < busy_end]
    assert errors == []
    assert idle and busy, "the writers did not commit in both phases"
    assert "Incremental" in kinds and "Full" in kinds, kinds
    assert integrity(live) == ["ok"]
    assert query(live, "SELECT n = (SELECT count(*) FROM load_rows) FROM load_counter") == [(1,)]
    shutil.rmtree(backups)

    def row(phase: str, latencies: list[float], seconds: float) -> dict[str, object]:
        return {
            "phase": phase,
            "seconds": round(seconds, 1),
            "commits": len(latencies),
            "commits_per_second": round(len(latencies) / seconds),
            "writer_errors": 0,
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        }

    idle_row = row("writers alone", idle, busy_start - idle_start)
    busy_row = row(f"writers + {len(kinds)} backups back to back", busy, busy_end - busy_start)
    ratio = busy_row["p99_ms"] / idle_row["p99_ms"]  # type: ignore[operator]
    figures.add("Load", **idle_row, p99_ratio="")
    figures.add("Load", **busy_row, p99_ratio=f"{ratio:.2f}x")
    print(f"writer p99 with backups / alone: {ratio:.2f}x ({idle_row}, {busy_row})")
