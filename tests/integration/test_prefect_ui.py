"""What an operator sees in the Prefect UI, read back through Prefect's API from the session's
real server: run and task run names, tags, the Logs tab's story, artifact keys, versions
and rendering, the deployments' schedules and the automations (issue #17).

One module-scoped set of runs on an odd ledger (other table names, 8 KiB pages, a name
with a non-ASCII letter): a gated full backup started as the CLI starts it, an incremental
one as the API starts it, a verify and a restore. Each test only reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _helpers import make_odd_ledger, write_odd_ledger_config
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.logging.handlers import APILogWorker

from dagvault.config import load_settings
from dagvault.operations import BackupOptions, RestoreOptions
from dagvault.operations.verify import VerifyOptions
from deployments.automations import apply as apply_automations
from deployments.serve import runner_deployments
from flows.launcher import LaunchFailed, launch
from tasks._runtime import artifact_key

DATABASE = "Node_Ledger.2"  # keys allow lowercase letters, digits and dashes only
REPORTS_URL = "http://dagvault.example:8000/data-docs/"


@dataclass
class Runs:
    settings: Any
    full: FlowRun
    incremental: FlowRun
    verify: FlowRun
    restore: FlowRun
    backup_paths: list[str]

    @property
    def all(self) -> list[FlowRun]:
        return [self.full, self.incremental, self.verify, self.restore]


def _read(run_id: str | None) -> FlowRun:
    assert run_id
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


@pytest.fixture(scope="module")
def run_logs_at_info() -> Iterator[None]:
    """The suite runs Prefect at WARNING (PREFECT_LOGGING_LEVEL, tests/conftest.py); the
    story is told at INFO, Prefect's default."""
    loggers = [logging.getLogger(f"prefect.{name}") for name in ("flow_runs", "task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(scope="module")
def runs(
    prefect_api_url: str, run_logs_at_info: None, tmp_path_factory: pytest.TempPathFactory
) -> Runs:
    root = tmp_path_factory.mktemp("ui")
    ledger = make_odd_ledger(root / f"{DATABASE}.db", 120, blob_size=2_000)
    config = str(write_odd_ledger_config(root))
    settings = load_settings(
        {
            "database_path": str(ledger),
            "backup_dir": str(root / "backups"),
            "reports_dir": str(root / "reports"),
            "reports_url": REPORTS_URL,
        },
        config_file=config,
    )
    common = {"config_file": config, "settings": settings}
    full = launch("backup", BackupOptions(), origin="cli", **common)
    incremental = launch(
        "backup", BackupOptions(backup_type="Incremental", quality=False), origin="api", **common
    )
    newest = incremental.result.backup_path
    verify = launch("verify", VerifyOptions(backup_path=newest), origin="cli", **common)
    restored = load_settings({"database_path": str(root / "restored.db")}, base=settings)
    restore = launch(
        "restore",
        RestoreOptions(backup_path=newest),
        origin="cli",
        config_file=config,
        settings=restored,
    )
    APILogWorker.drain_all()  # the runs' log lines are on the server before a test reads
    return Runs(
        settings,
        _read(full.flow_run_id),
        _read(incremental.flow_run_id),
        _read(verify.flow_run_id),
        _read(restore.flow_run_id),
        [full.result.backup_path, newest],
    )


def _name(path: str) -> str:
    return Path(path).name


def test_runs_are_named_after_what_they_do(runs: Runs) -> None:
    full, incremental = _name(runs.backup_paths[0]), _name(runs.backup_paths[1])
    assert [r.name for r in runs.all] == [
        f"backup-{DATABASE}-full",
        f"backup-{DATABASE}-incremental",
        f"verify {incremental}",
        f"restore restored ← {incremental}",
    ]
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs.full.id]))
        )
    assert {t.name for t in tasks} == {  # a full backup is verified while it is written
        f"take-backup {DATABASE}.db (full)",
        f"quality-gate {full}",
    }


def test_every_run_is_tagged_alike_whoever_started_it(runs: Runs) -> None:
    common = {"dagvault", f"db:{DATABASE}"}
    assert set(runs.full.tags) == common | {"backup", "cli"}
    assert set(runs.incremental.tags) == common | {"backup", "api"}
    assert set(runs.verify.tags) == common | {"verify", "cli"}
    assert set(runs.restore.tags) == {"dagvault", "db:restored", "restore", "cli"}
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs.incremental.id]))
        )
    assert tasks and all(common | {"backup", "api"} <= set(t.tags) for t in tasks)


def _log(run: FlowRun) -> list[str]:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    return [log.message for log in sorted(logs, key=lambda log: log.timestamp)]


def test_the_log_tells_where_and_each_step_outcome(runs: Runs) -> None:
    lines = _log(runs.full)
    (opening,) = [line for line in lines if line.startswith(f"backup of {DATABASE}: ")]
    assert str(runs.settings.database_path) in opening
    assert str(runs.settings.backup_dir) in opening
    full = _name(runs.backup_paths[0])
    verified = [line for line in lines if line.startswith(f"verified {full}: ")]
    assert verified == [
        f"verified {full}: metadata ok, checksum ok, integrity ok, row counts ok, 120 transactions"
    ]
    assert any(line.startswith("gate passed 10/10") for line in lines), lines
    restored = "\n".join(_log(runs.restore))
    assert f"restored restored.db from {_name(runs.backup_paths[1])}" in restored


def _artifacts(**filters: Any) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(**filters))


def _rows(artifact: Any) -> list[dict[str, Any]]:
    data = artifact.data
    return data if isinstance(data, list) else json.loads(str(data))


def test_artifacts_have_stable_keys_with_a_version_per_run(runs: Runs) -> None:
    backups = artifact_key("backup", DATABASE)
    summaries = artifact_key("summary", "backup", DATABASE)
    assert backups == "backup-node-ledger-2"
    keyed = _artifacts(key=ArtifactFilterKey(any_=[backups, summaries]))
    runs_of = {key: {a.flow_run_id for a in keyed if a.key == key} for key in (backups, summaries)}
    assert runs_of[backups] == runs_of[summaries] == {runs.full.id, runs.incremental.id}
    # One summary per run, whatever the operation.
    for run in runs.all:
        summaries = [
            a
            for a in _artifacts(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            if a.key and a.key.startswith("summary-")
        ]
        assert len(summaries) == 1, run.name
        assert summaries[0].type == "markdown"
        assert "✅" in str(summaries[0].data)


def test_artifact_values_are_written_for_people(runs: Runs) -> None:
    def backup_table(run: FlowRun) -> dict[str, str]:
        (table,) = [
            a
            for a in _artifacts(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            if a.key == artifact_key("backup", DATABASE)
        ]
        return {row["field"]: row["value"] for row in _rows(table)}

    full, delta = backup_table(runs.full), backup_table(runs.incremental)
    size = Path(runs.backup_paths[0]).stat().st_size
    assert full["file_size"].endswith(f" KiB ({size:,} bytes)")
    assert json.loads(full["row_counts"])["tx_log"] == 120
    assert full["parent"] == ""  # nothing to say: an empty cell, not "-"
    assert delta["parent"] == _name(runs.backup_paths[0])
    assert "-" not in [*full.values(), *delta.values()]
    summary = next(
        a
        for a in _artifacts(flow_run_id=ArtifactFilterFlowRunId(any_=[runs.full.id]))
        if a.key == artifact_key("summary", "backup", DATABASE)
    )
    assert "| quality gate | passed 10/10 |" in str(summary.data)
    assert "| total transactions | 120 |" in str(summary.data)


def test_data_docs_and_progress_are_linked_for_the_ui(runs: Runs) -> None:
    found = {a.key: a for a in _artifacts(flow_run_id=ArtifactFilterFlowRunId(any_=[runs.full.id]))}
    link = found[artifact_key("quality", DATABASE) + "-docs"]
    assert link.type == "markdown"  # how Prefect stores a link artifact
    assert f"({REPORTS_URL}index.html)" in str(link.data)
    progress = found[artifact_key("progress", "backup", DATABASE)]
    assert progress.type == "progress" and float(progress.data) == 100.0


def test_deployment_schedules_are_cron_with_a_timezone(
    runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKUP_REPLICAS", raising=False)
    for deployment in runner_deployments():
        if deployment.name in ("full-backup", "replicate-off-site"):
            deployment.apply()
    with get_client(sync_client=True) as client:
        full = client.read_deployment_by_name("dagvault-backup/full-backup")
        replicate = client.read_deployment_by_name("dagvault-replicate/replicate-off-site")
    (daily,) = full.schedules
    assert (daily.schedule.cron, daily.schedule.timezone, daily.active) == (
        "0 0 * * *",
        "UTC",
        True,
    )
    assert set(full.tags) == {"dagvault", "backup", "schedule"}
    (hourly,) = replicate.schedules
    assert hourly.active is False
    assert "SCHEDULE INACTIVE: no replica configured" in (replicate.description or "")


@pytest.fixture
def webhook_block(prefect_api_url: str) -> Iterator[str]:
    block = CustomWebhookNotificationBlock(name="ops", url="http://127.0.0.1:9/hook")
    block.save("dagvault-ui-test", overwrite=True)
    yield "custom-webhook/dagvault-ui-test"


def test_automations_notify_the_operators_block(webhook_block: str) -> None:
    apply_automations(webhook_block)
    applied = apply_automations(webhook_block)  # twice: updated, not duplicated
    with get_client(sync_client=True) as client:
        block = client.read_block_document_by_name("dagvault-ui-test", "custom-webhook")
        # "dagvault: …" are these; the watcher's deployment triggers (dagvault-ledger-…,
        # tests/integration/test_watch.py) may share this server.
        stored = {a.name: a for a in client.read_automations() if a.name.startswith("dagvault: ")}
    assert (
        set(stored)
        == {a.name for a in applied}
        == {
            "dagvault: backup failed",
            "dagvault: quality gate failed",
            "dagvault: restore drill failed",
            "dagvault: replication lag",
        }
    )
    for automation in stored.values():
        (action,) = automation.actions
        assert action.type == "send-notification" and action.block_document_id == block.id
    failed_backup = stored["dagvault: backup failed"].trigger
    assert failed_backup.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert "dagvault-backup" in failed_backup.match_related["prefect.resource.name"]
    drill = stored["dagvault: restore drill failed"].trigger
    assert drill.match_related["prefect.resource.name"] == ["dagvault-restore-drill"]
    assert stored["dagvault: quality gate failed"].trigger.expect == {"dagvault.gate.failed"}
    assert stored["dagvault: replication lag"].trigger.expect == {"dagvault.replica.lagging"}


def test_a_failed_run_still_gets_its_summary(runs: Runs, tmp_path: Path) -> None:
    """A restore of a backup that is not there fails: its summary says why."""
    missing = tmp_path / "gone.db"
    restored = load_settings({"database_path": str(tmp_path / "x.db")}, base=runs.settings)
    with pytest.raises(LaunchFailed) as failed:
        launch("restore", RestoreOptions(backup_path=str(missing)), origin="cli", settings=restored)
    run = _read(failed.value.flow_run_id)
    assert run.name == "restore x ← gone.db"
    summaries = [
        a
        for a in _artifacts(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        if a.key == artifact_key("summary", "restore", "x")
    ]
    assert len(summaries) == 1
    assert "❌ restore failed" in str(summaries[0].data) and "**Error:**" in str(summaries[0].data)
