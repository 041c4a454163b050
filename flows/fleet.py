"""Back up a fleet of ledgers (one per node) in parallel, each in isolation.

Every ledger is one task running the ordinary backup flow (backup, verification, quality
gate, concurrency limits), so one node's failure never stops the others; the run ends
with a report of every node and fails if any did. The task runner is a parameter, so a
deployment can fan out over a Dask cluster as well as over local threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from dagvault.backup import backup_kind
from dagvault.config import Settings
from dagvault.errors import ConfigError, DagvaultError, FleetBackupIncomplete
from dagvault.fleet import Member, fleet_members
from flows._notify import HOOKS
from flows._settings import resolve
from flows._story import run_name
from flows.backup import backup_flow
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key

TASK_RUNNERS = ("default", "dask")


# No retries here: the backup flow's own tasks retry what a retry can fix.
@task(name="back-up-ledger", task_run_name="back-up {label}", persist_result=False)
def back_up_ledger(
    label: str,
    database_path: str,
    backup_dir: str,
    backup_type: str,
    quality: bool,
    config_file: str | None,
    settings: Settings,
) -> dict[str, Any]:
    """One node: the backup flow as a subflow run; a DagvaultError becomes its report."""
    report: dict[str, Any] = {"ledger": label, "database_path": database_path}
    try:
        info = backup_flow(
            database_path=database_path,
            backup_dir=backup_dir,
            backup_type=backup_type,
            quality=quality,
            config_file=config_file,
            settings=settings,
        )
    except DagvaultError as exc:
        return report | _failure(type(exc).__name__, exc.message, exc.hint, exc.exit_code)
    return report | {
        "status": "ok",
        "backup_path": info["backup_path"],
        "backup_type": info["backup_type"],
        "file_size": info["file_size"],
        "total_transactions": info["total_transactions"],
    }


def _failure(error_type: str, message: str, hint: str, exit_code: int) -> dict[str, Any]:
    return {
        "status": "failed",
        "error_type": error_type,
        "error": message,
        "hint": hint,
        "exit_code": exit_code,
    }


@contextmanager
def _task_runner(name: str, dask_address: str | None, size: int) -> Iterator[TaskRunner[Any]]:
    runner: TaskRunner[Any]
    if name == "dask":
        from prefect_dask import DaskTaskRunner

        runner = (
            DaskTaskRunner(address=dask_address)
            if dask_address
            else DaskTaskRunner(cluster_kwargs={"n_workers": min(size, 4), "processes": True})
        )
    elif name == "default":
        if dask_address:
            raise ConfigError("--dask-address needs --task-runner dask")
        runner = ThreadPoolTaskRunner(max_workers=min(size, 8))
    else:
        raise ConfigError(
            f"Unknown task runner {name!r}", f"Choose one of {', '.join(TASK_RUNNERS)}."
        )
    with runner:
        yield runner


def _outcome(member: Member, future: PrefectFuture[dict[str, Any]]) -> dict[str, Any]:
    """The task's report; a task that crashed (a worker lost, a bug) is reported too."""
    future.wait()
    state = future.state
    if state.is_completed():
        return future.result()
    return {"ledger": member.label, "database_path": str(member.database_path)} | _failure(
        "TaskFailed", f"{state.name}: {state.message}", "See the task run's log.", 1
    )


def _name(parameters: dict[str, Any], _database: str) -> str:
    return f"fleet-backup-{str(parameters.get('backup_type') or 'full').lower()}"


@flow(name="dagvault-fleet-backup", flow_run_name=run_name("fleet-backup", _name), **HOOKS)
def fleet_backup_flow(
    ledgers: list[str] | None = None,
    glob: str | None = None,
    backup_dir: str | None = None,
    backup_type: str = "full",
    quality: bool = True,
    task_runner: str = "default",
    dask_address: str | None = None,
    config_file: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Back up every ledger of a fleet (a list and/or a glob) in parallel, each into
    ``<BACKUP_DIR>/<label>``; ``task_runner`` "dask" runs them on the Dask cluster at
    ``dask_address`` (or on a local one). Fails, after all have run, if any failed."""
    settings = resolve(settings, config_file, backup_dir=backup_dir)
    backup_type = backup_kind(backup_type)  # a misspelt type fails once, not once per node
    members = fleet_members(ledgers, glob, settings.backup_dir)
    with _task_runner(task_runner, dask_address, len(members)) as runner:
        futures = [
            runner.submit(
                back_up_ledger,
                parameters={
                    "label": m.label,
                    "database_path": str(m.database_path),
                    "backup_dir": str(m.backup_dir),
                    "backup_type": backup_type,
                    "quality": quality,
                    "config_file": config_file,
                    "settings": settings,
                },
            )
            for m in members
        ]
        reports = [_outcome(m, f) for m, f in zip(members, futures, strict=True)]
    failed = [r for r in reports if r["status"] == "failed"]
    create_table_artifact(
        key=artifact_key("fleet", Path(settings.backup_dir).name),
        table=[
            {
                "ledger": r["ledger"],
                "status": r["status"],
                "backup or error": r.get("backup_path") or f"{r['error_type']}: {r['error']}",
            }
            for r in reports
        ],
        description=f"{len(reports) - len(failed)} of {len(reports)} ledgers backed up",
    )
    if failed:
        raise FleetBackupIncomplete(
            f"{len(failed)} of {len(reports)} ledgers were not backed up: "
            + " | ".join(f"{r['ledger']}: {r['error']}" for r in failed),
            "The other ledgers' backups are complete; fix the failed nodes and run the "
            "fleet backup again (or back them up one by one with `dagvault backup`).",
            reports=reports,
        )
    return {"ledgers": len(reports), "failed": 0, "reports": reports}
