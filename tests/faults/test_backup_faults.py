"""Backups under stress: a concurrent writer process, a file size limit.

Everything runs in real child processes against real SQLite files: the writer has its own
connection, "disk full" is RLIMIT_FSIZE with SIGXFSZ ignored (writes fail with EFBIG).
SIGKILL of a backup is in test_sigkill.py, a really full filesystem in test_full_disk.py.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from _helpers import (
    BACKUP_CHILD,
    hidden_leftovers,
    query,
    run_python,
    sha3_file,
    spawn_python,
    visible_files,
)

from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.verify import verify_file

BIG_TRANSACTIONS = 20_000  # about 100 MB: a backup takes a few tenths of a second


@pytest.fixture(scope="module")
def big_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dagvault.sample import create_sample_ledger

    path = tmp_path_factory.mktemp("big") / "blockchain.db"
    create_sample_ledger(path, BIG_TRANSACTIONS, seed=11, nodes=32)
    return path


# --------------------------------------------------------------------------- concurrent writer

WRITER = r"""
import json, os, random, sqlite3, sys, time
db, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
conn.execute("PRAGMA synchronous=NORMAL")
rng = random.Random(5)
n = conn.execute("SELECT n FROM counter").fetchone()[0]
commits, errors = [], []
print("ready", flush=True)
while not os.path.exists(stop):
    batch = rng.randint(1, 20)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO ticks (payload) VALUES (?)",
            [(rng.randbytes(300),) for _ in range(batch)],
        )
        conn.execute("UPDATE counter SET n = n + ?", (batch,))
        conn.execute("COMMIT")
        n += batch
        commits.append([time.monotonic(), n])
        time.sleep(0.0005)  # a busy node, not a benchmark: keeps the WAL small
    except Exception as exc:
        errors.append(repr(exc))
        if conn.in_transaction:
            conn.execute("ROLLBACK")
conn.close()
print(json.dumps({"commits": commits, "errors": errors}), flush=True)
"""


def test_backups_under_a_concurrent_writer_are_committed_states(
    big_ledger: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live.db"
    shutil.copyfile(big_ledger, live)
    with closing(sqlite3.connect(live, isolation_level=None)) as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        conn.execute("CREATE TABLE ticks (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        conn.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
        conn.execute("INSERT INTO counter VALUES (0)")
    backups = tmp_path / "backups"
    stop = tmp_path / "stop"

    writer = spawn_python(WRITER, str(live), str(stop))
    windows: list[tuple[float, float]] = []
    infos = []
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while query(live, "SELECT n FROM counter")[0][0] == 0:
            assert time.monotonic() < deadline, "writer never committed"
            time.sleep(0.01)
        for _ in range(3):
            started = time.monotonic()
            infos.append(create_backup(live, backups))
            windows.append((started, time.monotonic()))
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == []
    committed = {0} | {n for _, n in result["commits"]}

    counters = []
    for (started, finished), info in zip(windows, infos, strict=True):
        path = Path(info.backup_path)
        report = verify_file(path)  # checksum, PRAGMA integrity_check, row counts
        assert report.ok, report.problems
        assert report.checks["integrity_check"] == "ok"
        [(counter,)] = query(path, "SELECT n FROM counter")
        [(rows,)] = query(path, "SELECT count(*) FROM ticks")
        assert counter == rows, "backup is not a state any transaction committed"
        assert counter in committed
        assert info.row_counts["ticks"] == rows
        assert info.total_transactions == BIG_TRANSACTIONS
        during = [t for t, _ in result["commits"] if started <= t <= finished]
        assert len(during) > 0, "the writer was blocked by the backup"
        counters.append(counter)
    assert counters == sorted(counters) and counters[0] < counters[-1]
    assert query(live, "SELECT n = (SELECT count(*) FROM ticks) FROM counter") == [(1,)]


# --------------------------------------------------------------------------- full disk

FULL_DISK_CHILD = (
    BACKUP_CHILD
    + """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), hard))
print(json.dumps(main(sys.argv[1], sys.argv[2])), flush=True)
"""
)


def run_with_file_size_limit(db: Path, backups: Path, limit: int) -> dict[str, object]:
    proc = run_python(FULL_DISK_CHILD, str(db), str(backups), str(limit))
    assert proc.returncode == 0, proc.stderr
    outcome: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    outcome["stderr"] = proc.stderr
    return outcome


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.999], ids=["early", "middle", "last-page"])
def test_disk_full_during_backup_leaves_nothing(
    ledger: Path, tmp_path: Path, fraction: float
) -> None:
    backups = tmp_path / "backups"
    size = ledger.stat().st_size
    limit = max(int(size * fraction), 64 * 1024)  # above the source's 32 KiB -shm
    assert limit < size
    source_before = sha3_file(ledger)

    outcome = run_with_file_size_limit(ledger, backups, limit)

    assert outcome["ok"] is False, outcome
    assert "StorageError" in outcome["classes"]  # type: ignore[operator]
    assert outcome["exit_code"] == 6
    assert outcome["message"] and outcome["hint"]
    assert str(backups) in str(outcome["message"])
    assert "❌ Backup creation failed" in str(outcome["stderr"])
    assert visible_files(backups) == []  # no data file, no sidecar
    assert hidden_leftovers(backups) == []  # no temp file, no -journal
    assert list_backups(backups) == []
    assert sha3_file(ledger) == source_before

    info = create_backup(ledger, backups)  # space is back: a normal backup works
    assert verify_file(Path(info.backup_path)).ok
    assert visible_files(backups) == sorted(
        [Path(info.backup_path).name, Path(info.backup_path).name + ".meta"]
    )


def test_file_size_limit_above_the_backup_size_succeeds(ledger: Path, tmp_path: Path) -> None:
    # Control for the test above: the limit itself, not the child harness, makes it fail.
    backups = tmp_path / "backups"
    outcome = run_with_file_size_limit(ledger, backups, ledger.stat().st_size + 256 * 1024)
    assert outcome["ok"] is True, outcome
    assert verify_file(Path(str(outcome["backup_path"]))).ok
