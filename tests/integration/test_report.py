"""`dagvault report` as a user runs it, on a directory that real runs wrote: backups of an
odd ledger that grows between them, a verification that failed, a cleanup and a restore
drill's journal line; the session's Prefect server keeps the run's Markdown artifact.

The computations, the rendering and the empty report are tested in process in
tests/unit/test_report.py."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from _helpers import ODD_LEDGER_CONFIG, add_odd_transactions, write_odd_ledger_config
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from dagvault import journal
from dagvault.backup import create_backup
from dagvault.ledger import LedgerProfile
from dagvault.retention import cleanup_old_backups
from dagvault.verify import verify_backup

CliRunner = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest


def test_the_report_of_a_directory_of_real_backups(
    odd_ledger: Path, tmp_path: Path, cli: CliRunner
) -> None:
    backups = tmp_path / "node-7-backups"
    profile = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])
    for kind in ("full", "incremental", "incremental", "full"):
        create_backup(odd_ledger, backups, profile=profile, kind=kind)
        add_odd_transactions(odd_ledger, 10)
    first = sorted(backups.glob("*.db"))[0]
    first.write_bytes(first.read_bytes()[:-1] + b"\x00")  # damaged: its verify fails
    assert not verify_backup(first).ok
    cleanup_old_backups(backups, 3)
    journal.record(
        backups, "drill", journal.FAILURE, seconds=4.0, details={"rto_seconds": 3.5, "backup": "x"}
    )
    reports = tmp_path / "reports"
    config = write_odd_ledger_config(tmp_path)

    run = cli(
        "report",
        "--config",
        str(config),
        "--backup-dir",
        str(backups),
        "--reports-dir",
        str(reports),
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "ERROR" not in run.stderr
    out = run.stdout
    assert f"Backup health of {backups}: 30 days to" in out
    assert "⚠️  The last restore drill" in out and "failed" in out
    assert "⚠️  Failure rate" in out  # 2 of 6 runs this week (the verify, the drill)
    assert re.search(r"backup\s+4\s+0\s+100%", out)
    assert re.search(r"verify\s+1\s+1\s+0%", out)
    assert re.search(r"restore drills \(failed\)\s+1 \(1\)", out)
    kept = len(list(backups.glob("*.meta")))
    assert re.search(rf"backups in window\s+{kept}\n", out)
    page = reports / "health" / "health-report.html"
    assert f"charts: {page}" in out
    assert {"sizes.png", "rpo.png", "ledger.png", "outcomes.png"} <= {
        p.name for p in page.parent.iterdir()
    }
    assert "data:image/png;base64," in page.read_text()

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["health-report-node-7-backups"])
            )
        )
    assert artifact.type == "markdown"
    assert "| verify | 1 | 1 | 0% |" in str(artifact.data)
    assert f"# Backup health of {backups}" in str(artifact.data)
