"""File modes: whoever cannot read the ledger cannot read its backups, copies or exports.

The CLI runs as a user with the common umask 022 would run it: before, every backup,
sidecar, pre-restore copy and export came out 0644 beside a 0600 ledger.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_permissions.py."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from _helpers import add_odd_transactions
from _shared.permissions import umask

from dagvault import permissions
from dagvault.backup import create_backup
from dagvault.export.run import export_database
from dagvault.restore import restore_backup
from dagvault.verify import verify_all


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


def test_verify_keeps_the_sidecars_mode(odd_ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    create_backup(odd_ledger, backups)
    (sidecar,) = backups.glob("*.meta")
    sidecar.chmod(0o400)  # an operator made it read-only
    assert all(report.ok for report in verify_all(backups))
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o400


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
