from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.retention import RetentionPolicy, resolve_policy
from flows._settings import resolve
from tasks.prune import prune


@flow(name="dagvault-prune")
def prune_flow(
    keep_last: int | None = None,
    keep_hourly: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    dry_run: bool = False,
    backup_dir: str | None = None,
    config_file: str | None = None,
) -> dict[str, Any]:
    """restic-style retention (``dagvault prune``): keep-last and calendar rules combined
    with OR, chain-aware, never the newest verified full backup. With no rule at all,
    keep-last is BACKUP_RETENTION_COUNT; a policy whose rules are all 0 is refused."""
    settings = resolve(config_file, backup_dir=backup_dir)
    policy = resolve_policy(
        RetentionPolicy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly),
        settings.retention_count,
    )
    return prune(str(settings.backup_dir), policy.to_json(), dry_run)
