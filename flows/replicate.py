from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.events import emit_event

from dagvault.config import Settings
from dagvault.errors import ConfigError, ReplicationIncomplete
from dagvault.storage.backup_store import backup_store
from flows._concurrency import one_at_a_time
from flows._notify import HOOKS
from flows._settings import key_file, resolve
from flows._story import Story, run_name, told
from tasks.replicate import replicate_to

# Emitted per target whose lag is above the threshold; the "replication lag" automation
# (deployments/automations.py) notifies on it.
LAGGING_EVENT = "dagvault.replica.lagging"


@flow(name="dagvault-replicate", flow_run_name=run_name("replicate"), **HOOKS)
def replicate_flow(
    targets: list[str] | None = None,
    backup_dir: str | None = None,
    encrypt: bool | None = None,
    config_file: str | None = None,
    encryption_key_file: str | None = None,
    max_lag_hours: float | None = None,
    settings: Settings | None = None,
    bandwidth_limit: int | str | None = None,
) -> list[dict[str, Any]]:
    """Copy the local backups each target (default ``backup.replicas``) lacks, oldest
    first, uploading at most ``bandwidth_limit`` bytes/s (a number, or text such as "10M"
    in the UI; DAGVAULT_BANDWIDTH_LIMIT if unset; no limit by default), and report the lag
    per target (newest local vs newest backup there). Fails when a backup could not be
    copied. A target lagging more than ``max_lag_hours`` (default: two backup intervals) or
    holding no backup emits ``dagvault.replica.lagging``."""
    settings = resolve(
        settings,
        config_file,
        backup_dir=backup_dir,
        replicas=targets or None,
        encryption_enabled=encrypt,
        encryption_key_file=encryption_key_file,
        bandwidth_limit=bandwidth_limit,
    )
    if not backup_store(settings.backup_dir).is_local:
        raise ConfigError(
            f"BACKUP_DIR {settings.backup_dir} is itself a storage target; replication copies "
            "from a local backup directory",
            "Point --backup-dir / BACKUP_DIR at the local directory the backups are taken in.",
        )
    if not settings.replicas:
        raise ConfigError(
            "No replica to copy to", "Pass --to URL, or set backup.replicas / BACKUP_REPLICAS."
        )
    with told("replicate", settings) as story:
        # A prune of the local directory waits, so no backup vanishes half-way up.
        with one_at_a_time(backup_dir=settings.backup_dir):
            reports = [
                replicate_to(
                    str(settings.backup_dir),
                    target,
                    settings.encryption_enabled,
                    key_file(settings),
                    settings.bandwidth_limit,
                )
                for target in settings.replicas
            ]
        _report_lag(story, reports, max_lag_hours or 2 * settings.interval_hours)
        _raise_for_skipped(reports)
    return reports


def _report_lag(story: Story, reports: list[dict[str, Any]], max_lag_hours: float) -> None:
    story.note(max_lag_hours=max_lag_hours)
    for report in reports:
        lag = report["lag_seconds"]
        shown = "no backup there" if lag is None else f"{lag:,} s"
        story.note(**{f"lag of {report['target']}": shown})
        if lag is None or lag > max_lag_hours * 3600:
            emit_event(
                LAGGING_EVENT,
                resource={
                    "prefect.resource.id": f"dagvault.replica.{report['target']}",
                    "prefect.resource.name": report["target"],
                    "dagvault.database": story.database,
                },
                payload={"lag_seconds": lag, "max_lag_hours": max_lag_hours},
            )


def _raise_for_skipped(reports: list[dict[str, Any]]) -> None:
    skipped = [f"{r['target']}: {n}: {why}" for r in reports for n, why in r["skipped"].items()]
    if skipped:
        raise ReplicationIncomplete(
            f"{len(skipped)} backups were not copied: " + " | ".join(skipped),
            "Verify the named backups (`dagvault verify`); a delta whose parent is missing at "
            "the target needs that parent copied first, or a new full backup.",
            reports,
        )
