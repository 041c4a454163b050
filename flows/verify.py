from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.catalog import list_backups
from dagvault.errors import BackupNotFound, ConfigError, VerificationError
from flows._settings import resolve
from tasks._runtime import artifact_key
from tasks.verify import publish_verification_artifact, verify


class BackupsFailedVerification(VerificationError):
    """The verify flow's failure, with every backup's report (the CLI prints them all)."""

    def __init__(
        self, message: str, hint: str, *, problems: list[str], reports: list[dict[str, Any]]
    ) -> None:
        super().__init__(message, hint, problems=problems)
        self.reports = reports


@flow(name="dagvault-verify")
def verify_flow(
    backup_path: str | None = None,
    all_backups: bool = False,
    backup_dir: str | None = None,
    quick: bool = False,
    config_file: str | None = None,
) -> list[dict[str, Any]]:
    """Verify one backup, or every backup of the backup directory; fails if any is invalid."""
    settings = resolve(config_file, backup_dir=backup_dir)
    if all_backups == (backup_path is not None):
        raise ConfigError("Name one backup to verify, or ask for all of them (--all)")
    if all_backups:
        paths = [str(e.path) for e in list_backups(settings.backup_dir)]
        if not paths:
            raise BackupNotFound(
                f"No backups found in {settings.backup_dir}",
                "Check --backup-dir / BACKUP_DIR, or take one with `dagvault backup`.",
            )
    else:
        paths = [str(backup_path)]
    reports = [verify(path, quick=quick) for path in paths]
    publish_verification_artifact(reports, artifact_key("verify", settings.backup_dir.name))
    failed = [r for r in reports if not r["valid"]]
    if failed:
        problems = [f"{r['backup_path']}: {'; '.join(r['problems'])}" for r in failed]
        raise BackupsFailedVerification(
            f"{len(failed)} of {len(reports)} backups failed verification: " + " | ".join(problems),
            "Do not restore these backups; take a new backup and investigate the storage.",
            problems=problems,
            reports=reports,
        )
    return reports
