"""The Prefect flows in-process, against the session's real Prefect test server.

Real SQLite files in tmp_path; the server is queried for what an operator would see:
run states, task run counts (retries), artifacts and logs.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from _helpers import content_digest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.states import Failed, State

from dagvault import lock
from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.errors import (
    ConfigError,
    DagvaultError,
    DatabaseLocked,
    NotASQLiteDatabase,
    OperationInProgress,
    VerificationError,
    storage_error,
)
from dagvault.meta import BackupInfo, meta_path, read_meta
from dagvault.sample import create_sample_ledger
from flows.backup import backup_flow
from flows.cleanup import cleanup_flow
from flows.restore import restore_flow
from flows.scheduled import scheduled_backup_flow
from flows.verify import verify_flow
from tasks._runtime import RETRIES, is_retryable
from tasks.backup import take_backup
from tasks.restore import restore as restore_task

pytestmark = pytest.mark.usefixtures("prefect_api_url")

T = TypeVar("T")


def poll(fetch: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    """The server records task runs and logs asynchronously: ask until it has them."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the Prefect server never reported {what} within {timeout} s")
        time.sleep(0.25)


def flow_run_id(state: State[Any]) -> UUID:
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    return run_id


def finished_task_runs(run_id: UUID, expected: int) -> list[TaskRun]:
    """The flow run's task runs once the server holds ``expected`` of them, all finished."""

    def fetch() -> list[TaskRun] | None:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
        done = [r for r in runs if r.state is not None and r.state.is_final()]
        return done if len(done) == expected == len(runs) else None

    return poll(fetch, f"{expected} finished task runs of flow run {run_id}")


def task_run_named(runs: list[TaskRun], task_name: str) -> TaskRun:
    # Runs are named after what they do (take-backup ledger.db (full)); the key is the task's.
    (run,) = [r for r in runs if r.task_key.startswith(f"{task_name}-")]
    return run


def corrupt(path: Path) -> None:
    """Flip one byte in the middle of the file (inside the b-tree pages)."""
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def backups_of(directory: Path, count: int, db: Path) -> list[BackupInfo]:
    return [create_backup(db, directory, description=f"#{i}") for i in range(count)]


def test_backup_flow_completes_with_artifact_and_core_logs(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    state = backup_flow(
        database_path=str(ledger), backup_dir=str(backups), description="nightly", return_state=True
    )
    assert state.is_completed(), state
    info = state.result()
    json.dumps(info)  # a flow result must be plain JSON
    assert info["verification"]["status"] == "verified"
    assert info["metadata"]["description"] == "nightly"
    assert info["total_transactions"] == 300
    path = Path(info["backup_path"])
    assert path.parent == backups and path.is_file()
    assert read_meta(path).verification.status == "verified"

    run_id = flow_run_id(state)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        assert run.state is not None and run.state.is_completed()
        assert client.read_flow(run.flow_id).name == "dagvault-backup"
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    (artifact,) = [a for a in artifacts if a.key == "backup-blockchain"]
    assert artifact.type == "table"
    rows = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    table = {row["field"]: row["value"] for row in rows}
    assert table["backup_path"] == info["backup_path"]
    assert table["checksum (SHA3-256)"] == info["checksum"]

    def backup_log_lines() -> list[str] | None:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
            )
        lines = [
            log.message
            for log in logs
            if log.name == "dagvault" and log.message.startswith("📦 Database backup created")
        ]
        return lines or None

    lines = poll(backup_log_lines, "the core's 📦 log line in the flow run's logs")
    assert lines == [f"📦 Database backup created: {info['backup_path']}"]


def test_verify_flow_fails_with_verification_error_on_a_corrupted_backup(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    good, bad = backups_of(backups, 2, ledger)
    corrupt(Path(bad.backup_path))

    state = verify_flow(all_backups=True, backup_dir=str(backups), return_state=True)
    assert state.is_failed(), state
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, VerificationError), exc
    assert len(exc.problems) == 1 and bad.backup_path in exc.problems[0]
    # Every backup's report travels with the failure (the CLI prints them all).
    outcomes = {r["backup_path"]: r["valid"] for r in exc.reports}  # type: ignore[attr-defined]
    assert outcomes == {good.backup_path: True, bad.backup_path: False}
    assert "checksum" in exc.problems[0]
    # Each outcome is recorded in the sidecar (retention reads it).
    assert read_meta(Path(bad.backup_path)).verification.status == "failed"
    assert read_meta(Path(good.backup_path)).verification.status == "verified"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id(state))
    assert run.state is not None and run.state.is_failed()


def test_restore_flow_round_trip(ledger: Path, tmp_path: Path) -> None:
    (info,) = backups_of(tmp_path / "backups", 1, ledger)
    backed_up = content_digest(Path(info.backup_path))
    create_sample_ledger(ledger, 40, seed=7, append=True)  # the live ledger moves on
    moved_on = content_digest(ledger)
    assert moved_on != backed_up

    result = restore_flow(info.backup_path, str(ledger))
    assert result["success"] is True
    assert result["backup_info"]["checksum"] == info.checksum
    assert content_digest(ledger) == backed_up
    pre = Path(result["pre_restore_backup"])
    assert pre.parent == ledger.parent and pre.name.startswith("blockchain.db.pre_restore_")
    assert content_digest(pre) == moved_on  # what the restore replaced is kept

    fresh = tmp_path / "restored" / "fresh.db"
    result = restore_flow(info.backup_path, str(fresh))
    assert result["pre_restore_backup"] is None
    assert any("empty" in w for w in result["warnings"])
    assert content_digest(fresh) == backed_up


def test_cleanup_flow_dry_run_plans_and_the_real_run_removes(ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    infos = backups_of(backups, 3, ledger)
    newest, older = infos[-1], infos[:-1]
    older_files = [p for i in older for p in (Path(i.backup_path), meta_path(Path(i.backup_path)))]
    expected_bytes = sum(p.stat().st_size for p in older_files)

    plan = cleanup_flow(keep=1, dry_run=True, backup_dir=str(backups))
    assert plan["dry_run"] is True
    assert (plan["kept"], plan["removed_backups"], plan["removed_files"]) == (1, 2, [])
    assert plan["bytes_freed"] == expected_bytes
    assert [d["action"] for d in plan["decisions"]] == ["keep", "remove", "remove"]
    assert plan["decisions"][0]["backup_path"] == newest.backup_path
    assert all(p.exists() for p in older_files)

    done = cleanup_flow(keep=1, backup_dir=str(backups))
    assert sorted(done["removed_files"]) == sorted(map(str, older_files))
    assert done["bytes_freed"] == expected_bytes
    assert not any(p.exists() for p in older_files)
    assert [str(e.path) for e in list_backups(backups)] == [newest.backup_path]


def test_scheduled_backup_flow_backs_up_when_due_and_applies_retention(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    # Recent backups of another database share the directory: they count for retention,
    # not for this ledger's schedule, so a backup of the ledger is due.
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(ledger)) as src, closing(sqlite3.connect(other)) as dst:
        src.backup(dst)
    others = backups_of(backups, 3, other)
    config = tmp_path / "dagvault.json"
    config.write_text(
        json.dumps(
            {
                "database": {"path": str(ledger)},
                "backup": {"directory": str(backups), "retention_count": 2, "interval_hours": 6},
            }
        )
    )

    outcome = scheduled_backup_flow(config_file=str(config))
    backup = outcome["backup"]
    assert backup is not None and backup["verification"]["status"] == "verified"
    assert Path(backup["backup_path"]).parent == backups
    assert backup["database_path"] == str(ledger.resolve())
    cleanup = outcome["cleanup"]
    assert cleanup is not None and cleanup["removed_backups"] == 2 and cleanup["kept"] == 2
    assert [str(e.path) for e in list_backups(backups)] == [
        backup["backup_path"],
        others[-1].backup_path,
    ]
    schedule = outcome["schedule"]
    assert schedule["is_due"] is False and schedule["interval_hours"] == 6
    assert schedule["last_backup"] == backup["timestamp"]
    assert schedule["next_backup"] == backup["timestamp"] + 6 * 3600

    again = scheduled_backup_flow(config_file=str(config))
    assert again["backup"] is None and again["cleanup"] is None
    assert again["schedule"]["is_due"] is False
    assert len(list_backups(backups)) == 2


class _RetryWatcher(logging.Handler):
    """Set when Prefect's task engine announces the first retry of a task run."""

    def __init__(self) -> None:
        super().__init__()
        self.retrying = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Retry 1/" in message:
            self.messages.append(message)
            self.retrying.set()


@contextmanager
def watching_retries() -> Iterator[_RetryWatcher]:
    logger = logging.getLogger("prefect.task_runs")
    watcher, level = _RetryWatcher(), logger.level
    logger.addHandler(watcher)
    logger.setLevel(logging.INFO)  # the retry notice is logged at INFO
    try:
        yield watcher
    finally:
        logger.removeHandler(watcher)
        logger.setLevel(level)


def test_backup_task_retries_while_another_operation_holds_the_lock(
    ledger: Path, tmp_path: Path
) -> None:
    held = threading.Event()

    def hold_until_first_retry(watcher: _RetryWatcher) -> None:
        with lock.hold(ledger, "test holding the lock"):
            held.set()
            watcher.retrying.wait(timeout=30)

    with watching_retries() as watcher:
        holder = threading.Thread(target=hold_until_first_retry, args=(watcher,), daemon=True)
        holder.start()
        assert held.wait(timeout=10)
        started = time.monotonic()
        state = backup_flow(
            database_path=str(ledger),
            backup_dir=str(tmp_path / "backups"),
            quality=False,  # the data-quality gate is not what this test is about
            return_state=True,
        )
        elapsed = time.monotonic() - started
        holder.join(timeout=30)

    assert state.is_completed(), state
    assert state.result()["verification"]["status"] == "verified"
    (notice,) = watcher.messages
    assert "OperationInProgress" in notice and "Another dagvault operation" in notice
    assert elapsed >= 2  # the retry waited its delay (2 s)
    # One task: a full backup is verified while it is written (no second read of it).
    runs = finished_task_runs(flow_run_id(state), expected=1)
    backup_run = task_run_named(runs, take_backup.name)
    assert backup_run.state is not None and backup_run.state.is_completed()
    assert backup_run.run_count == 2


def test_integrity_failures_are_never_retried(ledger: Path, tmp_path: Path) -> None:
    (info,) = backups_of(tmp_path / "backups", 1, ledger)
    corrupt(Path(info.backup_path))
    before = ledger.read_bytes()

    state = restore_flow(info.backup_path, str(ledger), return_state=True)
    assert state.is_failed(), state
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, VerificationError), exc
    assert ledger.read_bytes() == before
    assert not list(tmp_path.glob("blockchain.db.pre_restore_*"))

    restore_run = task_run_named(finished_task_runs(flow_run_id(state), 1), restore_task.name)
    assert restore_run.state is not None and restore_run.state.is_failed()
    assert restore_run.run_count == 1
    # The retry condition itself, on the flow's real Failed state and on each error class.
    assert RETRIES > 0  # so a run count of 1 means "not retried", not "no retries at all"
    assert is_retryable(restore_task, restore_run, state) is False
    cases: list[tuple[DagvaultError, bool]] = [
        (OperationInProgress("held"), True),
        (DatabaseLocked("busy"), True),
        (storage_error(OSError(errno.EIO, "I/O error"), "writing", "x"), True),
        (VerificationError("bad checksum"), False),
        (NotASQLiteDatabase("not sqlite"), False),
        (ConfigError("bad setting"), False),
        (storage_error(OSError(errno.ENOSPC, "No space left"), "writing", "x"), False),
    ]
    for error, retryable in cases:
        assert is_retryable(restore_task, restore_run, Failed(data=error)) is retryable
