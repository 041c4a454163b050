from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.config import Settings
from dagvault.presets import prune_policy
from dagvault.retention import RetentionPolicy
from flows._concurrency import one_at_a_time
from flows._notify import HOOKS
from flows._settings import resolve
from flows._story import run_name, told
from tasks.prune import prune


@flow(name="dagvault-prune", flow_run_name=run_name("prune"), **HOOKS)
def prune_flow(
    keep_last: int | None = None,
    keep_hourly: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    dry_run: bool = False,
    by_schedule: bool = False,
    backup_dir: str | None = None,
    config_file: str | None = None,
    database_path: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """restic-style retention (``dagvault prune``): keep-last and calendar rules combined
    with OR, chain-aware, never the newest verified full backup. With no rule at all,
    keep-last is BACKUP_RETENTION_COUNT — or, ``by_schedule``, the newest backup of each of
    the BACKUP_RETENTION_COUNT latest periods of BACKUP_INTERVAL_HOURS (the presets' "keep
    N"). A policy whose rules are all 0 is refused."""
    settings = resolve(settings, config_file, backup_dir=backup_dir, database_path=database_path)
    policy = prune_policy(
        RetentionPolicy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly),
        by_schedule=by_schedule,
        interval_hours=settings.interval_hours,
        retention_count=settings.retention_count,
    )
    with (
        told("prune", settings) as story,
        one_at_a_time(backup_dir=settings.backup_dir, removes=True),
    ):
        result = prune(
            str(settings.backup_dir),
            policy.to_json(),
            dry_run,
            str(settings.database_path),
            settings.pre_restore_keep,
        )
        story.note(
            policy=policy.describe(),
            dry_run=dry_run,
            kept=result["kept"],
            removed_backups=result["removed_backups"],
            bytes_freed=result["bytes_freed"],
        )
    return result
