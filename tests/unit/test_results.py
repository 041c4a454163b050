"""Every operation's result model rebuilds, from its JSON document, the result it was dumped
from: what a client of the running service relies on (``Result.model_validate(data)``).
The documents here are the core's own reports of real backups of an odd ledger; the
operations the HTTP API also runs are compared there too (tests/integration/test_operations.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dagvault.backup import create_backup
from dagvault.operations.registry import OPERATIONS
from dagvault.retention import RetentionPolicy, prune_backups
from dagvault.schedule import backup_schedule
from dagvault.storage import open_store
from dagvault.storage.offsite.replicate import replicate
from dagvault.verify import verify_file


def _round_trip(operation: str, flow_result: Any) -> BaseModel:
    """The typed result of what the flow returned, after a trip through JSON text."""
    model = OPERATIONS[operation].result
    typed = model.model_validate(flow_result)
    document = json.loads(json.dumps(typed.model_dump(mode="json")))
    rebuilt = model.model_validate(document)
    assert rebuilt == typed
    assert rebuilt.model_dump(mode="json") == document
    return rebuilt


@pytest.fixture
def backups(odd_ledger: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "backups"
    create_backup(odd_ledger, directory, description="ünïcode")
    return directory


def test_verify_schedule_replicate_and_prune_results_round_trip(
    odd_ledger: Path, backups: Path, tmp_path: Path
) -> None:
    [backup] = sorted(backups.glob("*.db"))
    verified = _round_trip("verify", [verify_file(backup).to_json()])
    assert verified.valid is True and verified.reports[0]["valid"] is True  # type: ignore[attr-defined]

    plan = backup_schedule(odd_ledger, backups, 24).to_json()
    scheduled = _round_trip("schedule", {"schedule": plan, "backup": None, "cleanup": None})
    assert scheduled.schedule.is_due is False  # type: ignore[attr-defined]

    replica = tmp_path / "replica"
    reports = [replicate(backups, open_store(replica.as_uri()), None).to_json()]
    replicated = _round_trip("replicate", reports)
    [report] = replicated.root  # type: ignore[attr-defined]
    assert report.copied == [backup.name] and report.lag_seconds == 0
    assert replicated.model_dump(mode="json") == json.loads(json.dumps(reports))

    pruned = prune_backups(backups, RetentionPolicy(keep_last=1), dry_run=True).to_json()
    assert _round_trip("prune", pruned).kept == 1  # type: ignore[attr-defined]


def test_a_failed_verification_and_a_fleet_result_round_trip() -> None:
    failed = {"valid": False, "reports": [], "error": "1 of 1 backups failed verification"}
    assert _round_trip("verify", failed).model_dump() == failed
    fleet = {"ledgers": 1, "failed": 0, "reports": [{"ledger": "a", "status": "ok"}]}
    assert _round_trip("fleet-backup", fleet).ok is True  # type: ignore[attr-defined]
