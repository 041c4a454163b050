"""Data-quality gates (GX) on real SQLite backups and real exported files.

Each expectation fails on a ledger broken in exactly one way and passes on the sample
ledger. The Prefect flows run against the session's test server; the CLI in a
subprocess. GX takes seconds to import: it is imported once, by the first gate.

Integration half; the tests that need no server or child process are in
tests/unit/test_quality.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _shared.quality import ALL_CHECKS, run_sql, tamper_parquet
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

import tasks.export
from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.errors import QualityGateFailed
from dagvault.meta import read_meta
from flows.backup import backup_flow
from flows.export import export_flow

# Backups taken with the core outside a flow run: Prefect's API log handler (bridged onto
# the "dagvault" logger by tasks._runtime) has no run to send their log lines to.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Logger 'dagvault' attempted to send logs:UserWarning"
)


# --------------------------------------------------------------------------- Prefect and CLI


def artifacts_of(state: Any) -> dict[str, Any]:
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key: a for a in found}


@pytest.mark.usefixtures("prefect_api_url")
def test_backup_flow_runs_the_gate_and_a_failed_gate_fails_the_run(
    ledger: Path, tmp_path: Path
) -> None:
    backups, reports = tmp_path / "backups", tmp_path / "reports"
    kwargs = {
        "database_path": str(ledger),
        "backup_dir": str(backups),
        "reports_dir": str(reports),
        "return_state": True,
    }
    state = backup_flow(**kwargs)
    assert state.is_completed(), state
    info = state.result()
    assert info["quality"]["passed"] is True
    assert info["quality"]["data_docs"] == str(reports / "data_docs" / "index.html")
    assert read_meta(Path(info["backup_path"])).verification.status == "verified"
    artifact = artifacts_of(state)["quality-blockchain"]
    rows = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    assert {r["expectation"] for r in rows} == ALL_CHECKS
    assert all(r["success"] for r in rows)
    assert "index.html" in (artifact.description or "")

    run_sql(ledger, "INSERT INTO transaction_parents VALUES (11, 11)")
    state = backup_flow(**kwargs)
    assert state.is_failed(), state
    error = state.result(raise_on_failure=False)
    assert isinstance(error, QualityGateFailed) and error.exit_code == 4
    assert "no_self_approval" in error.message
    newest = list_backups(backups)[0]
    assert newest.path.is_file() and newest.info is not None
    assert newest.info.verification.status == "failed"
    rows = artifacts_of(state)["quality-blockchain"].data
    rows = rows if isinstance(rows, list) else json.loads(str(rows))
    assert [r["expectation"] for r in rows if not r["success"]] == ["no_self_approval"]


@pytest.mark.usefixtures("prefect_api_url")
def test_export_flow_fails_when_a_written_dataset_lost_rows(
    ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real: Callable[..., Any] = tasks.export.export_database

    def export_then_truncate(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        tamper_parquet(Path(result.export_path) / "transactions.parquet", 200)
        return result

    monkeypatch.setattr(tasks.export, "export_database", export_then_truncate)
    state = export_flow(
        fmt="parquet",
        database_path=str(ledger),
        out=str(tmp_path / "export"),
        reports_dir=str(tmp_path / "reports"),
        return_state=True,
    )
    assert state.is_failed(), state
    error = state.result(raise_on_failure=False)
    assert isinstance(error, QualityGateFailed)
    assert "transactions 200/300" in error.message


def test_cli_verify_quality_exits_4_cleanly_and_list_shows_failed(
    cli: Callable[..., Any], ledger: Path, tmp_path: Path
) -> None:
    run_sql(ledger, "INSERT INTO transaction_parents VALUES (10, 999999)")
    info = create_backup(ledger, tmp_path / "backups")
    proc = cli(
        "verify", "--quality", info.backup_path, "--backup-dir", "backups", "--reports-dir", "rep"
    )
    assert proc.returncode == 4, proc.stderr
    assert "Error:" in proc.stderr and "Try:" in proc.stderr
    assert "dag_references_resolve" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Calculating Metrics" not in proc.stderr and "it/s" not in proc.stderr
    assert "FAILED: dag_references_resolve" in proc.stdout
    assert (tmp_path / "rep" / "data_docs" / "index.html").is_file()
    listed = cli("list", "--backup-dir", "backups")
    assert listed.returncode == 0 and "failed" in listed.stdout
