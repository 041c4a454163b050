"""Prefect tasks of the data-quality gates; the verdict is returned, the flow decides.

Each run publishes a table artifact (expectation, success, observed value) whose
description links the GX Data Docs, plus a link artifact to the Data Docs index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact

from dagvault.ledger import LedgerProfile
from dagvault.meta import read_meta
from dagvault.quality import Limits, check_export, gate_backup
from tasks._runtime import artifact_key, task_options


@task(**task_options())
def backup_quality_gate(
    backup_path: str,
    profile: LedgerProfile,
    reports_dir: str,
    allow_decrease: bool = False,
    min_timestamp: int = Limits.min_timestamp,
    max_future_seconds: int = Limits.max_future_seconds,
) -> dict[str, Any]:
    """Run the ledger's expectations on a backup and record the verdict in its .meta
    (a failure marks it failed); never raises for bad data: the flow fails the run."""
    report = gate_backup(
        Path(backup_path),
        profile,
        reports_dir=Path(reports_dir),
        allow_decrease=allow_decrease,
        limits=Limits(min_timestamp, max_future_seconds),
    ).to_json()
    database = Path(read_meta(Path(backup_path)).database_path).stem
    publish_quality_artifact(report, artifact_key("quality", database))
    return report


@task(**task_options())
def export_quality_gate(
    export_path: str,
    fmt: str,
    snapshot_counts: dict[str, int],
    reports_dir: str,
    journal_dir: str | None = None,
) -> dict[str, Any]:
    """Count the exported rows with DuckDB and validate them against the snapshot's."""
    report = check_export(
        Path(export_path),
        snapshot_counts,
        reports_dir=Path(reports_dir),
        fmt=fmt,
        journal_dir=Path(journal_dir) if journal_dir else None,
    ).to_json()
    publish_quality_artifact(report, artifact_key("quality-export", Path(export_path).name))
    return report


def publish_quality_artifact(report: dict[str, Any], key: str) -> None:
    docs = report["data_docs"]
    verdict = "passed" if report["passed"] else "FAILED"
    description = f"Data-quality gate {verdict} for {report['subject']}"
    if docs:
        url = Path(docs).as_uri()
        description += f"; GX Data Docs: [{docs}]({url})"
        create_link_artifact(
            key=f"{key}-docs"[:100], link=url, link_text="GX Data Docs", description=description
        )
    if report["warnings"]:
        description += "; warnings: " + "; ".join(report["warnings"])
    create_table_artifact(
        key=key,
        table=[
            {
                "expectation": e["name"],
                "table": e["table"] or "-",
                "column": e["column"] or "-",
                "success": e["success"],
                "observed_value": str(e["observed_value"]),
                "details": e["details"] or "-",
            }
            for e in report["expectations"]
        ],
        description=description,
    )
