"""Prefect tasks of the data-quality gates; the verdict is returned, the flow decides.

Each run logs its verdict in one line (``gate passed 10/10``), publishes a table artifact
(expectation, success, observed value) and a link artifact to the GX Data Docs: at
DAGVAULT_REPORTS_URL where they are served over HTTP (`dagvault api` serves them at
/data-docs/), else the file on the worker's disk. A failed gate also emits the Prefect
event ``dagvault.gate.failed``, which the "failed gate" automation notifies on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.events import emit_event

from dagvault.ledger import LedgerProfile
from dagvault.meta import read_meta
from dagvault.quality import Limits, check_export, gate_backup
from dagvault.quality.gx_runner import data_docs_dir
from tasks._artifacts import create_link_artifact, create_table_artifact
from tasks._runtime import artifact_key, task_options
from tasks._story import cell, leaf, step

GATE_FAILED_EVENT = "dagvault.gate.failed"


def _backup_gate_name(parameters: dict[str, Any]) -> str:
    return f"quality-gate {leaf(parameters['backup_path'])}"


def _export_gate_name(parameters: dict[str, Any]) -> str:
    return f"export-gate {leaf(parameters['export_path'])}"


@task(task_run_name=_backup_gate_name, **task_options())
def backup_quality_gate(
    backup_path: str,
    profile: LedgerProfile,
    reports_dir: str,
    allow_decrease: bool = False,
    min_timestamp: int = Limits.min_timestamp,
    max_future_seconds: int = Limits.max_future_seconds,
    reports_url: str | None = None,
    gated: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the ledger's expectations on a backup and record the verdict in its .meta
    (a failure marks it failed); never raises for bad data: the flow fails the run.
    ``gated``: the verdict the backup was given while it was written (its sidecar's
    ``quality``), published here as a gate run afterwards is."""
    if gated is not None:
        report = {"subject": backup_path, **gated}
    else:
        report = gate_backup(
            Path(backup_path),
            profile,
            reports_dir=Path(reports_dir),
            allow_decrease=allow_decrease,
            limits=Limits(min_timestamp, max_future_seconds),
        ).to_json()
    database = Path(read_meta(Path(backup_path)).database_path).stem
    _publish(report, artifact_key("quality", database), database, reports_dir, reports_url)
    return report


@task(task_run_name=_export_gate_name, **task_options())
def export_quality_gate(
    export_path: str,
    fmt: str,
    snapshot_counts: dict[str, int],
    reports_dir: str,
    journal_dir: str | None = None,
    database: str = "",
    reports_url: str | None = None,
) -> dict[str, Any]:
    """Count the exported rows with DuckDB and validate them against the snapshot's."""
    report = check_export(
        Path(export_path),
        snapshot_counts,
        reports_dir=Path(reports_dir),
        fmt=fmt,
        journal_dir=Path(journal_dir) if journal_dir else None,
    ).to_json()
    # One key per database and format: every export of it is a version of the same artifact.
    key = artifact_key("quality-export", fmt, database or leaf(export_path))
    _publish(report, key, database, reports_dir, reports_url)
    return report


def gate_line(report: dict[str, Any]) -> str:
    """``passed 10/10`` or ``FAILED 9/10: no_self_approval``."""
    outcomes = report["expectations"]
    passed = sum(e["success"] for e in outcomes)
    line = f"{'passed' if report['passed'] else 'FAILED'} {passed}/{len(outcomes)}"
    failed = [e["name"] for e in outcomes if not e["success"]]
    return line + (f": {', '.join(failed)}" if failed else "")


def docs_link(data_docs: str, reports_dir: str, reports_url: str | None) -> str:
    """Where a UI user opens the Data Docs page ``data_docs``: below ``reports_url`` when
    the Data Docs directory is served, else the file (on the worker's disk)."""
    page = Path(data_docs)
    if reports_url:
        try:
            return reports_url + page.relative_to(data_docs_dir(Path(reports_dir))).as_posix()
        except ValueError:  # written elsewhere than the served directory
            pass
    return page.as_uri()


def _publish(
    report: dict[str, Any], key: str, database: str, reports_dir: str, reports_url: str | None
) -> None:
    verdict = gate_line(report)
    step("gate %s (%s)", verdict, leaf(report["subject"]))
    if not report["passed"]:
        emit_event(
            GATE_FAILED_EVENT,
            resource={
                "prefect.resource.id": f"dagvault.database.{database or 'unknown'}",
                "prefect.resource.name": database,
            },
            payload={"subject": report["subject"], "verdict": verdict},
        )
    description = f"Data-quality gate {verdict} for {report['subject']}"
    if docs := report["data_docs"]:
        url = docs_link(docs, reports_dir, reports_url)
        description += f"; GX Data Docs: [{url}]({url})"
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
                "table": cell(e["table"]),
                "column": cell(e["column"]),
                "success": e["success"],
                "observed_value": cell(e["observed_value"]),
                "details": cell(e["details"]),
            }
            for e in report["expectations"]
        ],
        description=description,
    )
