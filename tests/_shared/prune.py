"""Shared by the unit and the integration half of test_prune.py."""

from __future__ import annotations

from pathlib import Path

from _helpers import content_digest

from dagvault.backup import create_backup
from dagvault.restore import restore_backup
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_file

TYPE = {"full": "Full", "incremental": "Incremental", "differential": "Differential"}


class History:
    """Real backups of the ledger fixture, each taken after 20 more transactions."""

    def __init__(self, ledger: Path, directory: Path, scratch: Path) -> None:
        self.ledger, self.directory, self.scratch = ledger, directory, scratch
        self.content: dict[Path, dict[str, str]] = {}

    def take(self, kind: str, parent: Path | None = None) -> Path:
        create_sample_ledger(self.ledger, 20, append=True)
        info = create_backup(self.ledger, self.directory, kind=kind)
        assert info.backup_type == TYPE[kind], info.metadata.get("full_backup_reason")
        assert info.metadata.get("parent") == (parent.name if parent else None)
        path = Path(info.backup_path)
        self.content[path] = content_digest(self.ledger)
        return path

    def assert_restorable(self, backups: list[Path]) -> None:
        for backup in backups:
            assert verify_file(backup).ok, backup
            target = self.scratch / f"{backup.name}.restored.db"
            restore_backup(backup, target, pre_restore_backup=False)
            assert content_digest(target) == self.content[backup], backup
            target.unlink()
