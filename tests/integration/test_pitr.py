"""Point-in-time restore, restore drills and the RPO, end to end: the real CLI and HTTP API
against the session's Prefect server, on a ledger unlike the sample with a chain of a full
and four incremental backups whose contents are known.

The core of the choice and of drills, and the commands that start no flow run (list, the
refusals of restore --at, health), are unit-tested (tests/unit/test_recovery.py,
test_drill.py, test_pitr_cli.py); here: what runs a flow."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _api import api_server
from _helpers import ODD_LEDGER_CONFIG, add_odd_transactions, make_odd_ledger
from conftest import CliRunner
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from dagvault.backup import create_backup
from dagvault.ledger import LedgerProfile
from dagvault.recovery import parse_time


@dataclass(frozen=True)
class Chain:
    root: Path
    ledger: Path
    backups: Path
    config: Path
    # Each recovery point's moment (as `list` shows it) and the ledger's content then.
    points: list[tuple[str, list[str]]]

    def flags(self, db: Path | None = None) -> list[str]:
        return [
            "--config",
            str(self.config),
            "--backup-dir",
            str(self.backups),
            "--db",
            str(db or self.ledger),
        ]


def content(db: Path) -> list[str]:
    """Every row and schema object, as SQL: equal lists are equal ledgers."""
    with closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def copy_of(source: Path, dest: Path) -> Path:
    """A copy of a ledger through SQLite's backup API (never a plain file copy)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(dest)) as dst:
        src.backup(dst)
    return dest


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    root = tmp_path_factory.mktemp("pitr")
    ledger = make_odd_ledger(root / "node-ledger.db", 12)
    config = root / "dagvault-odd.json"
    config.write_text(json.dumps(ODD_LEDGER_CONFIG))
    profile = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])
    points = []
    for index in range(5):
        if index:
            add_odd_transactions(ledger, 3)
        info = create_backup(
            ledger, root / "backups", kind="incremental" if index else "full", profile=profile
        )
        points.append((info.created_at, content(ledger)))
    assert len({tuple(c) for _, c in points}) == 5  # five different states
    return Chain(root, ledger, root / "backups", config, points)


def test_restore_at_a_random_time_gives_exactly_that_recovery_point(
    chain: Chain, cli: CliRunner, tmp_path: Path
) -> None:
    """The acceptance test: a random time between two points (or after the newest) restores
    the newest point at or before it, through its chain of incrementals, byte for byte the
    ledger it was; with the pre-restore backup of the database it replaced."""
    rng = random.Random()
    index = rng.randrange(len(chain.points))
    start = parse_time(chain.points[index][0])
    # After the newest point: a moment already past (a time in the future is refused).
    end = (
        parse_time(chain.points[index + 1][0])
        if index + 1 < len(chain.points)
        else min(start + 0.5, time.time())
    )
    when = f"{rng.uniform(start, end):.6f}"
    target = copy_of(chain.ledger, tmp_path / "target.db")
    add_odd_transactions(target, 1)  # the state a restore replaces
    done = cli("restore", "--at", when, *chain.flags(target), "--json")
    assert done.returncode == 0, f"--at {when}: {done.stderr}"
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr
    result = json.loads(done.stdout)
    assert result["recovery_point"] == chain.points[index][0], f"--at {when}"
    assert content(target) == chain.points[index][1], f"--at {when}"
    assert result["pre_restore_backup"] and Path(result["pre_restore_backup"]).is_file()


def test_drill_metrics_health_and_restore_at_through_the_api(
    chain: Chain, cli: CliRunner, prefect_api_url: str, tmp_path: Path
) -> None:
    live = content(chain.ledger)
    drilled = cli("drill", *chain.flags(), "--no-quality", "--json")
    assert drilled.returncode == 0, drilled.stderr
    result = json.loads(drilled.stdout)
    assert result["success"] and result["rto_seconds"] > 0
    assert [c["role"] for c in result["checks"]] == ["newest", "older"]
    assert result["checks"][0]["recovery_point"] == chain.points[-1][0]
    assert content(chain.ledger) == live  # drills never touch the live ledger
    with get_client(sync_client=True) as client:  # the run's artifact, for the Prefect UI
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["restore-drill-backups"])),
            limit=1,
        )
    assert "passed, RTO" in str(artifact.description) and "newest" in str(artifact.data)

    target = copy_of(chain.ledger, tmp_path / "target.db")
    env = {
        "DATABASE_PATH": str(target),
        "BACKUP_DIR": str(chain.backups),
        "DAGVAULT_CONFIG": str(chain.config),
    }
    with api_server(tmp_path, prefect_api_url, extra_env=env) as server:
        metrics = httpx.get(server.url + "/metrics").text
        assert "dagvault_restore_drill_success 1.0" in metrics
        assert f"dagvault_restore_drill_seconds {result['rto_seconds']}" in metrics
        assert "dagvault_rpo_seconds " in metrics
        health = httpx.get(server.url + "/health").json()["data"]
        assert health["last_drill"]["success"] is True
        assert health["newest_recovery_point"] == chain.points[-1][0]
        at = chain.points[1][0]
        answer = httpx.post(server.url + "/backup/restore", json={"at": at}, timeout=300)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["result"]["recovery_point"] == at and data["at"] == at
        assert content(target) == chain.points[1][1]
        refused = httpx.post(server.url + "/backup/restore", json={"at": "2000-01-01"})
        assert refused.status_code == 400 and "recovery window" in refused.json()["error"]


def test_a_backup_that_does_not_restore_fails_the_drill_and_degrades_health(
    chain: Chain, cli: CliRunner
) -> None:
    """Last in this file: it damages the chain's newest backup."""
    newest = max(chain.backups.glob("*.incr"), key=lambda p: p.stat().st_mtime_ns)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    failed = cli("drill", *chain.flags(), "--no-quality")
    assert failed.returncode == 4, failed.stderr
    assert "Restore drill failed" in failed.stderr and "Try:" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout
    assert "FAILED" in failed.stdout  # the table of points is printed first
