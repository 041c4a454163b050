"""restore_backup when things go wrong: corrupt backups, locks, SIGKILL, time limits.

The invariant under test: the live database holds exactly its old content or exactly
the backup's, never a mix, and a refused restore touches nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from _helpers import content_digest as digest_of
from _helpers import scalar, shrink_ledger

from dagvault import lock
from dagvault.backup import create_backup
from dagvault.errors import (
    BackupNotFound,
    DatabaseLocked,
    OperationInProgress,
    RestoreError,
    VerificationError,
)
from dagvault.meta import BackupInfo, meta_path, write_meta
from dagvault.restore import restore_backup
from dagvault.sample import create_sample_ledger
from dagvault.snapshot import STEP_PAGES
from faults._harness import Figures, points

PROJECT = Path(__file__).resolve().parents[2]
Digest = dict[str, str]

# Big enough that a restore copies several backup-API steps (> 4096 pages) and takes
# most of a second, small enough to keep the module well under a minute.
BIG_TRANSACTIONS = 12_000
KILLS_PER_MODE = points(5, 20)


# helpers ------------------------------------------------------------------------------


def file_image(db: Path) -> dict[str, bytes]:
    """The bytes of the database and of its journal/WAL, if any (the -shm is an index).

    Only call it while this process has no connection to ``db``: closing a descriptor
    of the file would drop that connection's POSIX locks."""
    image = {}
    for suffix in ("", "-wal", "-journal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            image[suffix] = path.read_bytes()
    return image


def pre_restore_files(db: Path) -> list[Path]:
    return sorted(path for path in db.parent.iterdir() if f"{db.name}.pre_restore_" in path.name)


def remove_pre_restore_files(db: Path) -> None:
    for path in pre_restore_files(db):
        path.unlink()


def set_journal_mode(db: Path, mode: str) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{PROJECT}{os.pathsep}{path}" if path else str(PROJECT)}


class LineReader:
    """Lines from a pipe with a timeout (no buffering behind select's back)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def readline(self, timeout: float = 60.0) -> str | None:
        """The next line, or None at end of file."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line from the child within {timeout} s"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return None
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


_SQL_CHILD = r"""
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
print(json.dumps({"ok": True, "rows": []}), flush=True)
for line in sys.stdin:
    try:
        reply = {"ok": True, "rows": [list(r) for r in conn.execute(json.loads(line))]}
    except sqlite3.Error as exc:
        reply = {"ok": False, "error": str(exc)}
    print(json.dumps(reply), flush=True)
"""


class SqlChild:
    """Another process with one long-lived connection to ``db``, running SQL on demand."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SQL_CHILD, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.lines = LineReader(self.proc.stdout.fileno())
        self._reply()

    def _reply(self) -> list[list[Any]]:
        line = self.lines.readline(30)
        assert line is not None, f"SQL child exited with {self.proc.wait()}"
        reply = json.loads(line)
        assert reply["ok"], reply["error"]
        return list(reply["rows"])

    def sql(self, statement: str) -> list[list[Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(statement) + "\n").encode())
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def child() -> Iterator[Callable[[Path], SqlChild]]:
    started: list[SqlChild] = []

    def start(db: Path) -> SqlChild:
        started.append(SqlChild(db))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


@dataclass(frozen=True)
class Backed:
    backup: Path
    info: BackupInfo
    digest: Digest


def back_up(db: Path, backup_dir: Path) -> Backed:
    digest = digest_of(db)
    info = create_backup(db, backup_dir)
    return Backed(Path(info.backup_path), info, digest)


# 5: corrupt backups -------------------------------------------------------------------


def _flip_bit(backup: Path, info: BackupInfo) -> None:
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0x10
    backup.write_bytes(data)


def _truncate(backup: Path, info: BackupInfo) -> None:
    with open(backup, "r+b") as fh:
        fh.truncate(info.file_size - 4096)


def _drop_meta(backup: Path, info: BackupInfo) -> None:
    meta_path(backup).unlink()


def _zero_btree_page_and_forge_checksum(backup: Path, info: BackupInfo) -> None:
    with closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'transactions'"
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    data = bytearray(backup.read_bytes())
    data[(root - 1) * page_size : root * page_size] = bytes(page_size)
    backup.write_bytes(data)
    write_meta(backup, replace(info, checksum=hashlib.sha3_256(data).hexdigest()))


def _forge_row_counts(backup: Path, info: BackupInfo) -> None:
    counts = {**info.row_counts, "transactions": info.row_counts["transactions"] + 1}
    write_meta(backup, replace(info, row_counts=counts))


@pytest.mark.parametrize(
    ("corrupt", "failed_check"),
    [
        (_flip_bit, "checksum"),
        (_truncate, "file_size"),
        (_drop_meta, "metadata"),
        (_zero_btree_page_and_forge_checksum, "integrity_check"),
        (_forge_row_counts, "row_counts"),
    ],
    ids=["flipped-bit", "truncated", "no-meta", "zeroed-page-forged-checksum", "row-counts"],
)
def test_corrupt_backup_is_refused_before_anything_is_touched(
    ledger: Path,
    tmp_path: Path,
    corrupt: Callable[[Path, BackupInfo], None],
    failed_check: str,
) -> None:
    good = back_up(ledger, tmp_path / "backups")
    shrink_ledger(ledger, 200)
    corrupt(good.backup, good.info)
    before_digest = digest_of(ledger)
    before_image = file_image(ledger)

    with pytest.raises(VerificationError) as caught:
        restore_backup(good.backup, ledger)

    assert caught.value.exit_code == 4
    assert not caught.value.retryable
    problems = caught.value.problems
    assert any(p.startswith(failed_check) or failed_check in p for p in problems), problems
    assert file_image(ledger) == before_image
    assert digest_of(ledger) == before_digest
    assert pre_restore_files(ledger) == []


def test_corrupt_backup_into_new_file_creates_nothing(ledger: Path, tmp_path: Path) -> None:
    good = back_up(ledger, tmp_path / "backups")
    _flip_bit(good.backup, good.info)
    target = tmp_path / "fresh" / "new.db"
    with pytest.raises(VerificationError):
        restore_backup(good.backup, target)
    assert not target.exists()
    assert not Path(f"{target}-journal").exists()


def test_missing_backup_is_backup_not_found(ledger: Path, tmp_path: Path) -> None:
    before_image = file_image(ledger)
    with pytest.raises(BackupNotFound) as caught:
        restore_backup(tmp_path / "backups" / "nope_1700000000.db", ledger)
    assert caught.value.exit_code == 3
    assert file_image(ledger) == before_image
    assert pre_restore_files(ledger) == []


# 6: locks -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_writer_in_another_process_gives_database_locked(
    ledger: Path, tmp_path: Path, child: Callable[[Path], SqlChild], mode: str
) -> None:
    if mode != "wal":
        set_journal_mode(ledger, mode)
    good = back_up(ledger, tmp_path / "backups")
    shrink_ledger(ledger, 200)
    before_digest = digest_of(ledger)
    before_image = file_image(ledger)

    writer = child(ledger)
    writer.sql("BEGIN IMMEDIATE")
    writer.sql("INSERT INTO nodes VALUES ('uncommitted', x'02', 9, 0, 0, 0)")

    started = time.monotonic()
    with pytest.raises(DatabaseLocked) as caught:
        restore_backup(good.backup, ledger, busy_timeout=0.5)
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert caught.value.exit_code == 5
    assert caught.value.retryable
    assert caught.value.hint
    assert writer.sql("SELECT count(*) FROM nodes WHERE node_id = 'uncommitted'") == [[1]]
    writer.sql("ROLLBACK")
    writer.close()
    assert digest_of(ledger) == before_digest
    assert file_image(ledger)[""] == before_image[""]
    assert scalar(ledger, "PRAGMA integrity_check") == "ok"

    # Once the writer is gone, the same restore goes through.
    restore_backup(good.backup, ledger, busy_timeout=0.5, pre_restore_backup=False)
    assert digest_of(ledger) == good.digest


def test_dagvault_lock_on_database_gives_operation_in_progress(
    ledger: Path, tmp_path: Path
) -> None:
    good = back_up(ledger, tmp_path / "backups")
    shrink_ledger(ledger, 200)
    before_digest = digest_of(ledger)
    before_image = file_image(ledger)

    with lock.hold(ledger, "test"), pytest.raises(OperationInProgress) as caught:
        restore_backup(good.backup, ledger)

    assert caught.value.exit_code == 5
    assert caught.value.retryable
    assert f"pid {os.getpid()}, test since" in caught.value.message
    assert file_image(ledger) == before_image
    assert digest_of(ledger) == before_digest
    assert pre_restore_files(ledger) == []
    # The lock is released with its holder.
    restore_backup(good.backup, ledger, pre_restore_backup=False)
    assert digest_of(ledger) == good.digest


def test_cleanup_holding_backup_directory_gives_operation_in_progress(
    ledger: Path, tmp_path: Path
) -> None:
    good = back_up(ledger, tmp_path / "backups")
    shrink_ledger(ledger, 200)
    before_image = file_image(ledger)
    with lock.hold(good.backup.parent, "cleanup"), pytest.raises(OperationInProgress):
        restore_backup(good.backup, ledger)
    assert file_image(ledger) == before_image
    assert pre_restore_files(ledger) == []


# 7: SIGKILL mid-restore ---------------------------------------------------------------


@dataclass(frozen=True)
class BigLedger:
    state_b: Path  # the live database's starting content (not a backup)
    a: Backed
    b: Backed


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> BigLedger:
    root = tmp_path_factory.mktemp("big")
    db = root / "ledger.db"
    create_sample_ledger(db, BIG_TRANSACTIONS, seed=5, nodes=32)
    a = back_up(db, root / "backups")
    shrink_ledger(db, BIG_TRANSACTIONS - 2_500)
    b = back_up(db, root / "backups")
    assert a.digest != b.digest
    assert a.info.page_count > 3 * STEP_PAGES  # several backup-API steps
    return BigLedger(db, a, b)


def live_copy(big: BigLedger, tmp_path: Path, mode: str) -> Path:
    target = tmp_path / "live" / "ledger.db"
    target.parent.mkdir()
    shutil.copyfile(big.state_b, target)
    if mode != "wal":
        set_journal_mode(target, mode)
    return target


_RESTORER = r"""
import sys, time
from pathlib import Path
from dagvault import progress
from dagvault.restore import restore_backup

backup, db = Path(sys.argv[1]), Path(sys.argv[2])
pause_stage, pause = sys.argv[3], float(sys.argv[4])
paused = False

def listener(stage, done, total):
    global paused
    print("progress", stage.replace(" ", "-"), done, total, flush=True)
    if stage == pause_stage and done < total and not paused:
        paused = True  # a slow progress bar: lets the parent kill at this exact point
        print("paused", stage, flush=True)
        time.sleep(pause)

print("start", flush=True)
with progress.listening(listener):
    restore_backup(backup, db, busy_timeout=5)
print("done", flush=True)
"""


def kill_restore(
    backup: Path, db: Path, *, trigger: str | int, delay: float, pause_stage: str = ""
) -> tuple[int, list[str], str]:
    """Run a restore in a child and SIGKILL it ``delay`` s after ``trigger`` (a line
    prefix, or the number of progress lines to wait for). With ``pause_stage`` the child
    pauses 2 s at that stage's first progress report and says "paused". Returns
    (returncode, lines, stderr); returncode 0 when the restore finished first."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _RESTORER, str(backup), str(db), pause_stage, "2.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    assert proc.stdout is not None
    reader = LineReader(proc.stdout.fileno())
    lines: list[str] = []
    progress_seen = 0
    try:
        while True:
            line = reader.readline()
            if line is None:
                break
            lines.append(line)
            progress_seen += line.startswith("progress")
            if (isinstance(trigger, str) and line.startswith(trigger)) or (
                isinstance(trigger, int)
                and line.startswith("progress")
                and progress_seen >= trigger
            ):
                time.sleep(delay)
                proc.kill()
                break
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, lines, stderr.decode(errors="replace")


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


# Kills at a known point first (the outcome is then known too), then at random points.
PLANNED_KILLS = ("restore", "pre-restore backup")


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_sigkill_during_restore_leaves_old_or_new_content(
    big: BigLedger, tmp_path: Path, mode: str, figures: Figures
) -> None:
    db = live_copy(big, tmp_path, mode)
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    steps = math.ceil(big.b.info.page_count / STEP_PAGES) + math.ceil(
        big.a.info.page_count / STEP_PAGES
    )
    current, other = big.b, big.a
    outcomes = []
    killed = 0
    for attempt in range(KILLS_PER_MODE):
        planned = PLANNED_KILLS[attempt] if attempt < len(PLANNED_KILLS) else ""
        if planned:  # after one backup-API step of that stage, with more to come
            trigger: str | int = "paused"
            delay = 0.0
        else:  # anywhere: verification, pre-restore backup, copy, post-check, or not at all
            trigger = rng.randint(0, steps) or "start"
            delay = rng.uniform(0.0, 0.25)
        context = f"seed={seed} attempt={attempt} mode={mode} trigger={trigger} delay={delay:.3f}"

        returncode, lines, stderr = kill_restore(
            other.backup, db, trigger=trigger, delay=delay, pause_stage=planned
        )
        assert returncode in (0, -9), f"{context}: {returncode} {lines} {stderr}"
        killed += returncode == -9
        if planned:
            assert returncode == -9 and f"paused {planned}" in lines, f"{context}: {lines}"
        if planned == "restore":  # the kill really interrupted writes to the live database
            companion = Path(f"{db}-wal" if mode == "wal" else f"{db}-journal")
            assert companion.exists() and companion.stat().st_size > 0, context
        if planned == "pre-restore backup":
            assert temp_files(db.parent), f"{context}: no half-written pre-restore backup"

        assert scalar(db, "PRAGMA integrity_check") == "ok", context
        assert scalar(db, "PRAGMA journal_mode") == mode, context
        state = digest_of(db)
        if planned:
            assert state == current.digest, f"{context}: an interrupted restore left changes"
        elif state == other.digest:
            outcomes.append("new")
        else:
            assert state == current.digest, f"{context}: neither old nor new content"
            outcomes.append("old")

        result = restore_backup(other.backup, db, pre_restore_backup=False)
        assert result.success, context
        assert digest_of(db) == other.digest, context
        assert temp_files(db.parent) == [], f"{context}: temp files of the killed run remain"
        remove_pre_restore_files(db)
        current, other = other, current
    print(f"{mode}: seed {seed}, random kills left {outcomes}")
    figures.add(
        "SIGKILL",
        operation=f"restore ({mode} database)",
        kill_points=KILLS_PER_MODE,
        killed_mid_run=killed,
        finished_first=KILLS_PER_MODE - killed,
        left_old_state=len(PLANNED_KILLS) + outcomes.count("old"),
        left_new_state=outcomes.count("new"),
        faults_injected=KILLS_PER_MODE,
        faults_detected=KILLS_PER_MODE,
        data_lost=0,
    )


# 9: time limit ------------------------------------------------------------------------


def test_max_seconds_exceeded_on_multi_step_restore_changes_nothing(
    big: BigLedger, tmp_path: Path
) -> None:
    db = live_copy(big, tmp_path, "wal")
    with pytest.raises(RestoreError) as caught:
        restore_backup(big.a.backup, db, max_seconds=1e-9, pre_restore_backup=False)
    assert caught.value.exit_code == 7
    assert "max_restore_time" in caught.value.message
    assert "max_restore_time" in caught.value.hint
    assert scalar(db, "PRAGMA integrity_check") == "ok"
    assert digest_of(db) == big.b.digest
    assert scalar(db, "PRAGMA journal_mode") == "wal"


def test_failed_restore_of_other_page_size_leaves_wal_target_as_found(
    big: BigLedger, ledger: Path, tmp_path: Path
) -> None:
    """A WAL target leaves WAL for a page-size-changing copy; a copy that then fails
    (here: time limit, multi-step at 8 KiB pages) must leave it in WAL, as found."""
    source = tmp_path / "source8k.db"
    shutil.copyfile(big.a.backup, source)
    with closing(sqlite3.connect(source, isolation_level=None)) as conn:
        conn.execute("PRAGMA page_size=8192")
        conn.execute("VACUUM")
    backup = back_up(source, tmp_path / "backups")
    assert backup.info.page_size == 8192
    assert backup.info.page_count > STEP_PAGES
    before = digest_of(ledger)

    with pytest.raises(RestoreError, match="max_restore_time"):
        restore_backup(backup.backup, ledger, max_seconds=1e-9, pre_restore_backup=False)

    assert digest_of(ledger) == before
    assert scalar(ledger, "PRAGMA journal_mode") == "wal"
    assert scalar(ledger, "PRAGMA page_size") == 4096


def test_max_seconds_exceeded_into_new_file_leaves_no_file(big: BigLedger, tmp_path: Path) -> None:
    target = tmp_path / "new.db"
    with pytest.raises(RestoreError):
        restore_backup(big.a.backup, target, max_seconds=1e-9)
    assert sorted(tmp_path.iterdir()) == [tmp_path / ".new.db.dagvault.lock"]


def test_max_seconds_error_is_only_raised_when_nothing_changed(
    ledger: Path, tmp_path: Path
) -> None:
    """A single-step restore commits inside its only step: once it has, the time limit
    must not report a rollback that did not happen."""
    good = back_up(ledger, tmp_path / "backups")
    assert good.info.page_count <= STEP_PAGES
    shrink_ledger(ledger, 200)
    before = digest_of(ledger)
    try:
        restore_backup(good.backup, ledger, max_seconds=1e-9, pre_restore_backup=False)
    except RestoreError as exc:
        assert "unchanged" in exc.message
        assert digest_of(ledger) == before, "RestoreError says unchanged, but it was restored"
    else:
        assert digest_of(ledger) == good.digest
