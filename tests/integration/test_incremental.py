"""Incremental and differential backups on real SQLite files: chains, fallbacks, faults.

Deltas are checked against an independent reading of the documented format (records,
trailer, image digest = SHA3-256 of the BLAKE2b-256 page digests) rather than through
dagvault's own reader, and every restore is compared with the content digest the live
database had when the backup was taken.

Integration half; the tests that need no server or child process are in
tests/unit/test_incremental.py."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest
import zstandard
from _helpers import (
    content_digest,
    copy_of,
    integrity,
    query,
    read_meta_json,
    sha3_file,
    spawn_python,
)
from _shared.incremental import execute, path_of, plain_bytes, restored, take

from dagvault.meta import BackupInfo
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_backup, verify_file

BIG_TRANSACTIONS = 20_000  # about 100 MB


@pytest.fixture(scope="module")
def big_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "blockchain.db"
    create_sample_ledger(path, BIG_TRANSACTIONS, seed=11, nodes=32)
    return path


# --------------------------------------------------------------------------- compression


def zstd_decompress(stored: Path, dest: Path) -> None:
    """``zstd -d`` where the binary exists, else the zstandard module (a streaming frame)."""
    binary = shutil.which("zstd")
    if binary:
        subprocess.run([binary, "-q", "-d", str(stored), "-o", str(dest)], check=True)
    else:
        with open(stored, "rb") as src, open(dest, "wb") as out:
            zstandard.ZstdDecompressor().copy_stream(src, out)


def test_compressed_full_and_deltas(ledger: Path, tmp_path: Path) -> None:
    backups, out = tmp_path / "backups", tmp_path / "out"
    plain_full = take(ledger, tmp_path / "plain", "full")
    full = take(ledger, backups, "full", compression=True)
    assert path_of(full).name.endswith(".db.zst")
    assert full.compression_enabled and read_meta_json(path_of(full))["compression_enabled"]
    assert full.file_size < plain_full.file_size
    assert full.checksum == sha3_file(path_of(full))  # of the stored, compressed bytes
    unpacked = tmp_path / "unpacked.db"
    zstd_decompress(path_of(full), unpacked)
    assert integrity(unpacked) == ["ok"]
    assert content_digest(unpacked) == content_digest(ledger)
    # The image of the compressed full is page for page the plain full's.
    assert unpacked.read_bytes() == path_of(plain_full).read_bytes()

    taken = [(full, content_digest(ledger))]
    changes = [
        ("incremental", True, "UPDATE transactions SET amount = amount + 2 WHERE id % 5 = 0"),
        ("incremental", False, "DELETE FROM transaction_parents WHERE child_id % 11 = 0"),
        ("differential", True, "UPDATE nodes SET stake = stake + 9"),
        ("incremental", True, "DELETE FROM transactions WHERE id = 300"),
    ]
    for kind, compression, statement in changes:
        execute(ledger, statement)
        info = take(ledger, backups, kind, compression=compression)
        assert info.backup_type == kind.capitalize()
        suffix = {"incremental": ".incr", "differential": ".diff"}[kind]
        assert path_of(info).name.endswith(suffix + (".zst" if compression else ""))
        assert info.compression_enabled is compression
        assert info.checksum == sha3_file(path_of(info))
        if compression:
            plain_delta = tmp_path / f"{path_of(info).name}.plain"
            zstd_decompress(path_of(info), plain_delta)
            assert plain_delta.read_bytes()[:8] == b"DVDELTA1"
            assert plain_delta.read_bytes() == plain_bytes(path_of(info))
        taken.append((info, content_digest(ledger)))
    for info, digest in taken:
        report = verify_backup(path_of(info))
        assert report.ok, report.problems
        assert report.checks["integrity_check"] == "ok"
        assert content_digest(restored(path_of(info), out)) == digest


# --------------------------------------------------------------------------- concurrency

WRITER = r"""
import json, os, random, sqlite3, sys, time
db, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, isolation_level=None, timeout=30)
assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
conn.execute("PRAGMA synchronous=NORMAL")
rng = random.Random(17)
version, count, total = conn.execute("SELECT version, n, total FROM counter").fetchone()
commits, errors = [], []
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        conn.execute("BEGIN IMMEDIATE")
        rows = [(rng.randint(1, 1000), rng.randbytes(rng.randint(50, 2500)))
                for _ in range(rng.randint(1, 8))]
        conn.executemany("INSERT INTO ticks (value, payload) VALUES (?, ?)", rows)
        added = sum(v for v, _ in rows)
        top = conn.execute("SELECT max(id) FROM ticks").fetchone()[0]
        picked = conn.execute(
            "SELECT id, value FROM ticks WHERE id >= ? ORDER BY id LIMIT 3",
            (rng.randint(1, top),),
        ).fetchall()
        # updates and deletes too: deltas must carry rewritten and freed pages
        for tick_id, _ in picked[:2]:
            conn.execute(
                "UPDATE ticks SET value = value + 1, payload = ? WHERE id = ?",
                (rng.randbytes(rng.randint(50, 2500)), tick_id),
            )
        removed = picked[2:]
        for tick_id, _ in removed:
            conn.execute("DELETE FROM ticks WHERE id = ?", (tick_id,))
        new_count = count + len(rows) - len(removed)
        new_total = total + added + len(picked[:2]) - sum(v for _, v in removed)
        conn.execute(
            "UPDATE counter SET version = ?, n = ?, total = ?",
            (version + 1, new_count, new_total),
        )
        conn.execute("COMMIT")
        version, count, total = version + 1, new_count, new_total
        commits.append([time.monotonic(), version])
        time.sleep(0.001)
    except Exception as exc:
        errors.append(repr(exc))
        if conn.in_transaction:
            conn.execute("ROLLBACK")
conn.close()
print(json.dumps({"commits": commits, "errors": errors}), flush=True)
"""

INVARIANT = (
    "SELECT version, n = (SELECT count(*) FROM ticks), "
    "total = (SELECT coalesce(sum(value), 0) FROM ticks) FROM counter"
)


def test_incrementals_under_a_concurrent_writer_restore_committed_states(
    big_ledger: Path, tmp_path: Path
) -> None:
    live = copy_of(big_ledger, tmp_path / "live")
    with closing(sqlite3.connect(live, isolation_level=None)) as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        conn.execute(
            "CREATE TABLE ticks (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, payload BLOB)"
        )
        conn.execute("CREATE TABLE counter (version INTEGER, n INTEGER, total INTEGER)")
        conn.execute("INSERT INTO counter VALUES (0, 0, 0)")
    backups, stop = tmp_path / "backups", tmp_path / "stop"
    writer = spawn_python(WRITER, str(live), str(stop))
    windows: list[tuple[float, float]] = []
    infos: list[BackupInfo] = []
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while query(live, "SELECT version FROM counter")[0][0] < 5:
            assert time.monotonic() < deadline, "writer never committed"
            time.sleep(0.01)
        for kind in ("full", "incremental", "incremental", "differential", "incremental"):
            started = time.monotonic()
            infos.append(take(live, backups, kind))
            windows.append((started, time.monotonic()))
            time.sleep(0.2)  # let the writer change a few pages between backups
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["errors"] == []
    committed = {0} | {version for _, version in result["commits"]}

    assert [i.backup_type for i in infos] == [
        "Full",
        "Incremental",
        "Incremental",
        "Differential",
        "Incremental",
    ]
    versions = []
    for (started, finished), info in zip(windows, infos, strict=True):
        assert any(started <= t <= finished for t, _ in result["commits"]), (
            "the writer was blocked by the backup"
        )
        report = verify_file(path_of(info))
        assert report.ok, report.problems
        target = restored(path_of(info), tmp_path / "out", verify=False)
        assert integrity(target) == ["ok"]
        [(version, count_ok, total_ok)] = query(target, INVARIANT)
        assert count_ok == 1 and total_ok == 1, "not a state any transaction committed"
        assert version in committed
        assert query(target, "SELECT count(*) FROM transactions") == [(BIG_TRANSACTIONS,)]
        versions.append(version)
        target.unlink()
    assert versions == sorted(versions) and versions[0] < versions[-1]
    assert all(i.changed_pages > 0 for i in infos[1:])
    assert query(live, INVARIANT)[0][1:] == (1, 1)
    assert integrity(live) == ["ok"]
