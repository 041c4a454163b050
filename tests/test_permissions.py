"""File modes: whoever cannot read the ledger cannot read its backups, copies or exports.

The CLI runs as a user with the common umask 022 would run it: before, every backup,
sidecar, pre-restore copy and export came out 0644 beside a 0600 ledger.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _api import api_server
from _helpers import add_odd_transactions
from conftest import CliRunner

from dagvault import permissions
from dagvault.backup import create_backup
from dagvault.export.run import export_database
from dagvault.health import DEGRADED_EXIT
from dagvault.restore import restore_backup
from dagvault.verify import verify_all


@contextmanager
def umask(value: int) -> Iterator[None]:
    """The CLI subprocesses inherit this umask (a desktop user's default is 022)."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Permission bits of every file and directory under ``root`` (``root`` included)."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_backups_restores_and_exports_of_a_private_ledger_stay_private(
    odd_ledger: Path, tmp_path: Path
) -> None:
    """The core, called as a deployment's worker calls it, under a umask of 022."""
    odd_ledger.chmod(0o600)
    backups, exports = tmp_path / "vault" / "backups", tmp_path / "vault" / "exports"
    with umask(0o022):
        for kind in ("full", "incremental"):
            create_backup(odd_ledger, backups, kind=kind)
            add_odd_transactions(odd_ledger, 5)
        newest = create_backup(odd_ledger, backups, compression=True)
        assert all(report.ok for report in verify_all(backups))
        for fmt in ("parquet", "sql"):
            export_database(fmt, database=odd_ledger, export_dir=exports)
        restored = restore_backup(Path(newest.backup_path), odd_ledger)
        assert restored.pre_restore_backup

    created = {
        **{f"backups/{k}": v for k, v in modes(backups).items()},
        **{f"exports/{k}": v for k, v in modes(exports).items()},
        "pre-restore": stat.S_IMODE(Path(restored.pre_restore_backup).stat().st_mode),
        "vault": stat.S_IMODE((tmp_path / "vault").stat().st_mode),
    }
    assert len([n for n in created if n.startswith("exports/")]) > 3
    open_to_others = {name: f"{mode:04o}" for name, mode in created.items() if mode & 0o077}
    assert open_to_others == {}
    assert created["vault"] == created["backups/."] == created["exports/."] == 0o700
    assert stat.S_IMODE(odd_ledger.stat().st_mode) == 0o600  # the restore kept the ledger's


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


def test_verify_keeps_the_sidecars_mode(odd_ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    create_backup(odd_ledger, backups)
    (sidecar,) = backups.glob("*.meta")
    sidecar.chmod(0o400)  # an operator made it read-only
    assert all(report.ok for report in verify_all(backups))
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o400


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


def test_owner_only_is_shared_by_concurrent_operations_and_restores_the_umask() -> None:
    with umask(0o022):
        entered, release = threading.Barrier(3), threading.Event()

        def operation() -> None:
            with permissions.owner_only():
                entered.wait()
                release.wait()

        workers = [threading.Thread(target=operation) for _ in range(2)]
        for worker in workers:
            worker.start()
        entered.wait()
        assert os.umask(0o077) == 0o077  # both operations run: owner-only
        release.set()
        for worker in workers:
            worker.join()
        assert os.umask(0o022) == 0o022  # the last one out put the caller's umask back
