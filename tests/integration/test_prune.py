"""``dagvault prune``: restic-style retention (dagvault.retention.plan_retention / prune_backups),
its Prefect flow and its command.

Calendar cases use synthetic catalog entries (real backups taken within a test share one
second); chain cases use real full/incremental/differential backups that must still verify
and restore after a prune.

Integration half; the tests that need no server or child process are in
tests/unit/test_prune.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from _shared.prune import History

from dagvault.backup import create_backup
from dagvault.errors import ConfigError
from dagvault.sample import create_sample_ledger

CliRunner = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture of conftest


# --------------------------------------------------------------------------- flow and command


@pytest.mark.filterwarnings("ignore:Logger 'dagvault' attempted to send logs:UserWarning")
def test_prune_flow_artifact_and_default_keep_last(
    prefect_api_url: str, ledger: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.prune import prune_flow

    backups = tmp_path / "backups"
    history = History(ledger, backups, tmp_path)
    full = history.take("full")
    incr = history.take("incremental", full)
    newest = history.take("incremental", incr)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"backup": {"directory": str(backups), "retention_count": 1}}))

    with pytest.raises(ConfigError):
        prune_flow(keep_last=0, config_file=str(config))
    state = prune_flow(dry_run=True, config_file=str(config), return_state=True)
    assert state.is_completed(), state
    plan = state.result()
    assert plan["policy"]["keep_last"] == 1  # BACKUP_RETENTION_COUNT: no rule was given
    assert plan["removed_files"] == [] and plan["removed_backups"] == 0  # all one chain

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    (artifact,) = [a for a in artifacts if a.key == "prune-blockchain"]  # per database
    rows = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    assert rows == [
        {
            "backup": newest.name,
            "type": "Incremental",
            "action": "would keep",
            "reasons": "keep-last 1",
        },
        {
            "backup": incr.name,
            "type": "Incremental",
            "action": "would keep",
            "reasons": f"needed by {newest.name}",
        },
        {
            "backup": full.name,
            "type": "Full",
            "action": "would keep",
            "reasons": f"needed by {incr.name}",
        },
    ]
    assert "Dry run: would free 0 B," in str(artifact.description)

    done = prune_flow(keep_daily=1, backup_dir=str(backups))  # the flag wins over the config
    assert done["policy"] == {
        "keep_last": None,
        "keep_hourly": None,
        "keep_daily": 1,
        "keep_weekly": None,
        "keep_monthly": None,
    }
    assert [Path(d["backup_path"]) for d in done["decisions"] if d["action"] == "keep"] == [
        newest,
        incr,
        full,
    ]


@pytest.mark.filterwarnings("ignore:Logger 'dagvault' attempted to send logs:UserWarning")
def test_prune_command(cli: CliRunner, ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    older = Path(create_backup(ledger, backups).backup_path)
    create_sample_ledger(ledger, 20, append=True)
    newer = Path(create_backup(ledger, backups, kind="full").backup_path)

    refused = cli("prune", "--keep-last", "0", "--backup-dir", str(backups))
    assert refused.returncode == 2 and "policy is empty" in refused.stderr

    dry = cli("prune", "--keep-last", "1", "--dry-run", "--json", "--backup-dir", str(backups))
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True and [d["action"] for d in plan["decisions"]] == [
        "keep",
        "remove",
    ]
    assert older.exists()

    proc = cli("prune", "--keep-last", "1", "--backup-dir", str(backups))
    assert proc.returncode == 0, proc.stderr
    assert "Policy: keep-last 1 (UTC calendar buckets)" in proc.stdout
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("backup"))
    assert header.split() == ["backup", "type", "action", "reasons"]
    assert any(line.split()[:3] == [older.name, "Full", "remove"] for line in lines)
    assert any(line.split()[:4] == [newer.name, "Full", "keep", "keep-last"] for line in lines)
    assert "🧹 removed 1 backups (2 files)" in proc.stdout
    assert not older.exists() and newer.exists()
