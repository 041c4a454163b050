# No `from __future__ import annotations`: a Dask worker that unpickles this flow by value
# (the fleet backup) must get real annotations for Prefect to validate ``settings`` with.

import tempfile
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from dagvault import events
from dagvault.backup import backup_kind
from dagvault.config import Settings, replica_targets
from dagvault.crypto import writing_key
from dagvault.errors import ConfigError, VerificationError
from dagvault.quality import Limits, gate_failure
from dagvault.quality.backup_gate import GateOptions
from dagvault.resources import ResourceLimits
from dagvault.storage.backup_store import backup_store
from flows._concurrency import one_at_a_time
from flows._notify import HOOKS
from flows._settings import key_file, ledger_profile, resolve
from flows._story import Story, backup_name, run_name, told
from tasks.backup import take_backup
from tasks.quality import backup_quality_gate, gate_line
from tasks.replicate import replicate_to as replicate_task
from tasks.replicate import upload_to
from tasks.resources import wait_for_resources_task
from tasks.verify import verify as verify_backup


def _check_targets(settings: Settings, replicas: list[str], backup_type: str) -> None:
    """Refuse before the backup what could only fail after it."""
    remote = not backup_store(settings.backup_dir).is_local
    if remote and backup_type != "full":
        raise ConfigError(
            f"--type {backup_type} needs the parent backup's pages, and BACKUP_DIR is a storage "
            "target",
            "Keep BACKUP_DIR local and copy it off-site with --replicate-to / backup.replicas "
            "(deltas are replicated too), or take full backups.",
        )
    if settings.encryption_enabled and not remote and not replicas:
        raise ConfigError(
            "--encrypt encrypts the copies at storage targets, and this backup has none: "
            f"BACKUP_DIR {settings.backup_dir} is local and no replica is set",
            "Add --replicate-to URL (or backup.replicas), or make BACKUP_DIR a URL; see "
            "docs/offsite.md.",
        )
    writing_key(settings.encryption_enabled, settings.encryption_key_file)


@flow(name="dagvault-backup", flow_run_name=run_name("backup", backup_name), **HOOKS)
def backup_flow(
    database_path: str | None = None,
    backup_dir: str | None = None,
    name: str | None = None,
    description: str = "",
    verify: bool = True,
    backup_type: str = "full",
    compress: bool | None = None,
    config_file: str | None = None,
    quality: bool = True,
    allow_decrease: bool | None = None,
    reports_dir: str | None = None,
    replicate_to: list[str] | None = None,
    encrypt: bool | None = None,
    encryption_key_file: str | None = None,
    settings: Settings | None = None,
    defer_when_busy: bool = False,
) -> dict[str, Any]:
    """Back up the ledger (``backup_type`` full, incremental or differential, in any case:
    the documented "Full" too; compressed with zstd when
    BACKUP_COMPRESSION_ENABLED or ``compress``), verify what was written (for a
    delta: its whole chain and the rebuilt image), then run the data-quality gate
    (GX expectations on the backup; Data Docs under DAGVAULT_REPORTS_DIR).

    A backup that fails verification or the gate fails the run (it stays on disk, marked
    failed, and is never counted as the newest verified backup). Fewer transactions than
    the baseline (the previous good backup, or a restore/import since) fail the gate unless
    ``allow_decrease`` (default: DAGVAULT_ALLOW_DECREASE / quality.allow_decrease).

    BACKUP_DIR may be a storage target: the backup is then written, verified and gated in
    a local staging directory and uploaded (full backups only). Afterwards each replica
    (``backup.replicas`` and ``replicate_to``) receives what it lacks, encrypted when
    ``encrypt`` / BACKUP_ENCRYPTION_ENABLED.

    ``defer_when_busy`` (the deployments' runs): wait first while BACKUP_DIR is short of
    space (BACKUP_MIN_FREE_MB) or the load per core is above BACKUP_MAX_LOAD_PER_CPU, at
    most RPO_TARGET_SECONDS + BACKUP_DEFER_GRACE_SECONDS after the run was due.
    """
    with events.failing_backup():  # ❌ for a bad setting, a lock, a failed check or gate too
        settings = resolve(
            settings,
            config_file,
            database_path=database_path,
            backup_dir=backup_dir,
            compression_enabled=compress,
            reports_dir=reports_dir,
            encryption_enabled=encrypt,
            encryption_key_file=encryption_key_file,
            allow_decrease=allow_decrease,
        )
        replicas = list(dict.fromkeys([*settings.replicas, *replica_targets(replicate_to or [])]))
        backup_type = backup_kind(backup_type)  # "Full" (as documented), "full", "FULL"…
        _check_targets(settings, replicas, backup_type)
        with told("backup", settings) as story:
            # Inside the story: the wait is a step of this run, named and tagged like the rest.
            deferred = _defer_while_busy(settings) if defer_when_busy else None
            with (
                one_at_a_time(database=settings.database_path, backup_dir=settings.backup_dir),
                backup_store(settings.backup_dir).writing_dir(settings.staging_dir) as directory,
            ):
                info = _back_up(
                    settings, str(directory), name, description, backup_type, verify, quality
                )
                _note_backup(story, info)
                if quality:
                    _gate(settings, info, story)
                info["replicas"] = _copy_off_site(settings, info, str(directory), replicas)
            story.note(replicas=info["replicas"], backup_path=info["backup_path"])
    if deferred is not None:
        info["deferred"] = deferred
    return info


def _note_backup(story: Story, info: dict[str, Any]) -> None:
    story.note(
        backup_path=info["backup_path"],
        backup_type=info["backup_type"],
        parent=info["metadata"].get("parent"),
        file_size=info["file_size"],
        total_transactions=info["total_transactions"],
        verification=info.get("verification", {}).get("status", "skipped"),
    )


def _defer_while_busy(settings: Settings) -> dict[str, Any]:
    store = backup_store(settings.backup_dir)
    # A remote BACKUP_DIR's backup is first written to the staging directory.
    disk = store.local_path or settings.staging_dir or tempfile.gettempdir()
    due = flow_run.scheduled_start_time.timestamp()
    deadline = due + settings.rpo_target_seconds + settings.defer_grace_seconds
    # The task's state carries the message (the UI shows it); its data goes to the result.
    state = wait_for_resources_task(str(disk), ResourceLimits.of(settings), deadline)
    return state.result()


def _back_up(
    settings: Settings,
    directory: str,
    name: str | None,
    description: str,
    backup_type: str,
    verify: bool,
    quality: bool,
) -> dict[str, Any]:
    # A plain full backup is gated while it is hashed (two cores, no second read); its
    # quality-gate step then publishes the verdict. Other kinds are gated after verify.
    gate = _gate_options(settings) if quality and verify else None
    info = take_backup(
        str(settings.database_path),
        directory,
        name,
        description,
        ledger_profile(settings),
        settings.busy_timeout_seconds,
        settings.compression_enabled,
        backup_type,
        key_file(settings),
        verify,
        gate,
    )
    if not verify:
        return info
    verified = info["verification"]  # a plain full backup is checked while it is written
    if verified.get("method") == "quality_gate":  # sound, and its gate failed: _gate says so
        verified = {"status": "verified"}
    if verified["status"] == "unverified":  # a delta's chain, a compressed file: verify now
        report = verify_backup(info["backup_path"], key_file=key_file(settings))
        verified = {"status": "verified" if report["valid"] else "failed", **report}
    info["verification"] = {"status": verified["status"]}
    if verified["status"] != "verified":
        raise VerificationError(
            f"Backup {info['backup_path']} failed verification right after it was "
            f"written: {'; '.join(verified['problems'])}",
            "Check the disk holding the backup directory, then take a new backup.",
            problems=verified["problems"],
        )
    return info


def _gate_options(settings: Settings) -> GateOptions:
    return GateOptions(
        ledger_profile(settings),
        settings.reports_dir,
        settings.allow_decrease,
        Limits(settings.min_timestamp, settings.max_future_seconds),
    )


def _gate(settings: Settings, info: dict[str, Any], story: Story) -> None:
    gate = backup_quality_gate(
        info["backup_path"],
        ledger_profile(settings),
        str(settings.reports_dir),
        settings.allow_decrease,
        settings.min_timestamp,
        settings.max_future_seconds,
        settings.reports_url,
        gated=info.get("quality"),
    )
    info["quality"] = gate
    story.note(quality_gate=gate_line(gate))
    if not gate["passed"]:
        info["verification"] = {"status": "failed"}
        raise gate_failure(gate, "the backup")


def _copy_off_site(
    settings: Settings, info: dict[str, Any], directory: str, replicas: list[str]
) -> list[str]:
    """Upload the staged backup to a remote BACKUP_DIR, then bring each replica up to date;
    return the targets that hold it now."""
    encrypt, key = settings.encryption_enabled, key_file(settings)
    limit = settings.bandwidth_limit  # every upload to a target, as `dagvault replicate`'s
    if not backup_store(settings.backup_dir).is_local:
        staged = info["backup_path"]
        info["backup_path"] = upload_to(staged, str(settings.backup_dir), encrypt, key, limit)
        for target in replicas:
            upload_to(staged, target, encrypt, key, limit)
    else:
        for target in replicas:
            replicate_task(directory, target, encrypt, key, limit)
    return replicas
