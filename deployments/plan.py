"""What the deployments take from the configuration when they are created.

``prefect deploy`` runs ``schedule_values`` as a build step (``{{ plan.* }}`` in
prefect.yaml) and ``serve.py`` calls it directly, so both read BACKUP_PRESET,
BACKUP_INTERVAL_HOURS, RPO_TARGET_SECONDS and DAGVAULT_CONFIG the same way. Only the
schedules and the watcher trigger's window are fixed at deploy time; every flow parameter
left empty is resolved on the node at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagvault.config import load_settings
from dagvault.errors import ConfigError
from dagvault.watch import trigger_window

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREFECT_FILE = Path(__file__).resolve().parent / "prefect.yaml"
HOURS_PER_DAY, HOURS_PER_WEEK = 24, 24 * 7


def full_backup_cron(hours: int) -> str:
    """The cron expression of a full backup every ``hours`` (the UI shows a cron schedule as
    text, "At 00:00", where an rrule stays a raw rule): on the hour for a divisor of 24,
    at midnight every N days (counted from the 1st of each month, as cron counts days), at
    midnight on Sundays for 168. Other intervals have no cron form and are refused."""
    days = hours // HOURS_PER_DAY
    if hours == 1:
        return "0 * * * *"
    if hours < HOURS_PER_DAY and HOURS_PER_DAY % hours == 0:
        return f"0 */{hours} * * *"
    if hours == HOURS_PER_WEEK:
        return "0 0 * * 0"
    if hours % HOURS_PER_DAY == 0 and days < 28:
        return "0 0 * * *" if days == 1 else f"0 0 */{days} * *"
    raise ConfigError(
        f"BACKUP_INTERVAL_HOURS={hours} has no cron schedule for the full-backup deployment",
        "Use a divisor of 24 (1, 2, 3, 4, 6, 8, 12), whole days (24, 48, … up to 648) or "
        "168 (weekly), or pick a preset (BACKUP_PRESET).",
    )


def schedule_values(config_file: str | None = None) -> dict[str, Any]:
    settings = load_settings(config_file=config_file)
    preset = settings.preset or "custom"
    # Hourly full backups (the critical preset) leave nothing for an incremental to add.
    incremental = settings.interval_hours > 1
    return {
        "project_dir": str(PROJECT_DIR),
        "full_backup_cron": full_backup_cron(settings.interval_hours),
        "incremental_active": incremental,
        # Without backup.replicas / BACKUP_REPLICAS there is nothing to copy to.
        "replicate_active": bool(settings.replicas),
        # The watcher's trigger fires at most once per window (docs/continuous.md).
        "rpo_target_seconds": settings.rpo_target_seconds,
        "trigger_window_seconds": trigger_window(settings.rpo_target_seconds),
        "preset": preset,
        # An inactive schedule says why in its deployment's description (the UI shows the
        # schedule greyed out, with no reason).
        "incremental_note": ""
        if incremental
        else f" SCHEDULE INACTIVE: full backups every hour (preset {preset}) leave nothing "
        "for an incremental to add.",
        "replicate_note": ""
        if settings.replicas
        else " SCHEDULE INACTIVE: no replica configured (backup.replicas / BACKUP_REPLICAS).",
    }
