from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault import authtag
from dagvault.config import Settings
from dagvault.errors import (
    BackupNotFound,
    BackupsFailedQualityGate,
    BackupsFailedVerification,
    ConfigError,
)
from dagvault.quality import gate_failure
from dagvault.storage.backup_store import backup_store, stored_backup
from flows._concurrency import directory_of, one_at_a_time
from flows._notify import HOOKS
from flows._settings import key_file, ledger_profile, resolve, staging_dir
from flows._story import run_name, told
from tasks._runtime import artifact_key
from tasks._story import leaf
from tasks.quality import backup_quality_gate
from tasks.verify import publish_verification_artifact, verify


def _name(parameters: dict[str, Any], database: str) -> str:
    if parameters.get("backup_path"):
        return f"verify {leaf(parameters['backup_path'])}"
    return "-".join(p for p in ("verify-all", database) if p)


@flow(name="dagvault-verify", flow_run_name=run_name("verify", _name), **HOOKS)
def verify_flow(
    backup_path: str | None = None,
    all_backups: bool = False,
    backup_dir: str | None = None,
    quick: bool = False,
    config_file: str | None = None,
    quality: bool = False,
    allow_decrease: bool | None = None,
    reports_dir: str | None = None,
    encryption_key_file: str | None = None,
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Verify one backup, or every backup of the backup directory; fails if any is invalid.

    With ``quality`` each intact backup also runs the data-quality gate (its new verdict
    replaces the recorded one); a failed gate fails the run too."""
    settings = resolve(
        settings,
        config_file,
        backup_dir=backup_dir,
        reports_dir=reports_dir,
        encryption_key_file=encryption_key_file,
        allow_decrease=allow_decrease,
    )
    if all_backups == (backup_path is not None):
        raise ConfigError("Name one backup to verify, or ask for all of them (--all)")
    where = stored_backup(backup_path) if backup_path else backup_store(settings.backup_dir)
    if quality and not where.is_local:
        raise ConfigError(
            "--quality runs on local backups only",
            "Verify the copy at the target without --quality; the gate ran when the backup "
            "was taken, and its verdict travels in the .meta.",
        )
    if all_backups:
        paths = [e.where for e in backup_store(settings.backup_dir).backups()]
        if not paths:
            raise BackupNotFound(
                f"No backups found in {settings.backup_dir}",
                "Check --backup-dir / BACKUP_DIR, or take one with `dagvault backup`.",
            )
    else:
        paths = [str(backup_path)]
    with (
        told("verify", settings) as story,
        one_at_a_time(backup_dir=directory_of(paths[0]) if backup_path else settings.backup_dir),
    ):
        reports = [
            verify(
                path,
                quick=quick,
                recheck_quality=quality,
                key_file=key_file(settings),
                staging_dir=staging_dir(settings),
            )
            for path in paths
        ]
        if quality:
            profile = ledger_profile(settings)
            for report in reports:
                report["quality"] = None
                if report["valid"]:
                    report["quality"] = backup_quality_gate(
                        report["backup_path"],
                        profile,
                        str(settings.reports_dir),
                        settings.allow_decrease,
                        settings.min_timestamp,
                        settings.max_future_seconds,
                        settings.reports_url,
                    )
        publish_verification_artifact(reports, artifact_key("verify", story.database))
        failed = [r for r in reports if not r["valid"]]
        rejected = [r for r in reports if r.get("quality") and not r["quality"]["passed"]]
        story.note(
            backups_checked=len(reports),
            valid=len(reports) - len(failed),
            failed_verification=[leaf(r["backup_path"]) for r in failed],
            failed_gate=[leaf(r["backup_path"]) for r in rejected],
        )
        _raise_for(reports, failed, rejected)
    return reports


def _raise_for(
    reports: list[dict[str, Any]], failed: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> None:
    if rejected and not failed:
        errors = [gate_failure(r["quality"], "the backup") for r in rejected]
        overridden = next((e for e in errors if e.hints), errors[0])
        failure = BackupsFailedQualityGate(
            f"{len(rejected)} of {len(reports)} backups failed the data-quality gate: "
            + " | ".join(e.message for e in errors),
            overridden.hint,
            problems=[p for e in errors for p in e.problems],
            reports=reports,
        )
        failure.hints = overridden.hints
        raise failure
    failed += rejected
    if failed:
        problems = [f"{r['backup_path']}: {'; '.join(_problems(r))}" for r in failed]
        raise BackupsFailedVerification(
            f"{len(failed)} of {len(reports)} backups failed verification: " + " | ".join(problems),
            authtag.LEGACY_REMEDY
            if any(authtag.MARKER in p for p in problems)
            else "Do not restore these backups; take a new backup and investigate the storage.",
            problems=problems,
            reports=reports,
        )


def _problems(report: dict[str, Any]) -> list[str]:
    found = list(report["problems"])
    gate = report.get("quality")
    if gate and not gate["passed"]:
        found += [f"quality: {p}" for p in gate_failure(gate, "the backup").problems]
    return found
