"""File modes: whoever cannot read the ledger cannot read its backups, copies or exports.

The CLI runs as a user with the common umask 022 would run it: before, every backup,
sidecar, pre-restore copy and export came out 0644 beside a 0600 ledger.

Integration half; the tests that need no server or child process are in
tests/unit/test_permissions.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
from _api import api_server
from _shared.permissions import umask
from conftest import CliRunner

from dagvault.backup import create_backup
from dagvault.health import DEGRADED_EXIT


def test_backups_take_a_group_readable_ledgers_bits_and_no_more(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path
) -> None:
    odd_ledger.chmod(0o640)
    backups = tmp_path / "backups"
    with umask(0o002):  # a umask that would make new files group-writable
        run = cli("backup", "--db", str(odd_ledger), "--backup-dir", str(backups), "--no-verify")
    assert run.returncode == 0, run.stderr
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in backups.iterdir()}
    published = {name: mode for name, mode in files.items() if not name.startswith(".")}
    assert len(published) == 2  # the backup and its .meta
    assert set(published.values()) == {0o640}


def test_health_warns_about_a_world_readable_backup_directory(
    cli: CliRunner, odd_ledger: Path, tmp_path: Path, prefect_api_url: str
) -> None:
    odd_ledger.chmod(0o600)
    backups = tmp_path / "backups"
    create_backup(odd_ledger, backups)
    flags = ["--db", str(odd_ledger), "--backup-dir", str(backups)]
    run = cli("health", *flags)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "status   : ok" in run.stdout

    backups.chmod(0o755)
    for backup in backups.iterdir():
        backup.chmod(0o644)
    run = cli("health", *flags, "--json")
    assert run.returncode == DEGRADED_EXIT, run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "degraded"
    assert any("open to every local account" in w for w in report["warnings"])
    assert any("readable by more accounts than the ledger" in w for w in report["warnings"])

    env = {"DATABASE_PATH": str(odd_ledger), "BACKUP_DIR": str(backups)}
    with api_server(tmp_path, prefect_api_url, extra_env=env) as server:
        health = httpx.get(server.url + "/health").json()["data"]
        assert health["status"] == "degraded"
        assert health["warnings"] == report["warnings"]
        backups.chmod(0o700)
        assert httpx.get(server.url + "/health").json()["data"]["status"] == "degraded"  # files
        for backup in backups.iterdir():
            backup.chmod(0o600)
        assert httpx.get(server.url + "/health").json()["data"]["status"] == "ok"
