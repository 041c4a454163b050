"""The recommended backup schedules as named presets (BACKUP_PRESET; docs/production.md).

A preset only supplies defaults: BACKUP_INTERVAL_HOURS and BACKUP_RETENTION_COUNT given
by a flag, the environment or the config file still win. "keep N" counts backup
intervals: the newest backup of each of the N latest periods the interval fits
(production keeps 30 days, critical 72 hours, development 7 weeks).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagvault.retention import RetentionPolicy, resolve_policy


@dataclass(frozen=True)
class Preset:
    interval_hours: int  # between full backups
    retention_count: int  # intervals whose newest backup the retention keeps


PRESETS: dict[str, Preset] = {
    "production": Preset(interval_hours=24, retention_count=30),
    "development": Preset(interval_hours=24 * 7, retention_count=7),
    "critical": Preset(interval_hours=1, retention_count=72),
}


def retention_by_schedule(interval_hours: int, retention_count: int) -> RetentionPolicy:
    """Keep the newest backup of each of the ``retention_count`` latest calendar periods
    matching the interval (hour, day, ISO week or month: the smallest that holds it).

    Chain closure keeps the deltas a kept backup needs, so hourly incrementals between
    daily full backups do not shorten the history the way a plain keep-last N would."""
    if interval_hours <= 1:
        return RetentionPolicy(keep_hourly=retention_count)
    if interval_hours <= 24:
        return RetentionPolicy(keep_daily=retention_count)
    if interval_hours <= 24 * 7:
        return RetentionPolicy(keep_weekly=retention_count)
    return RetentionPolicy(keep_monthly=retention_count)


def prune_policy(
    rules: RetentionPolicy, *, by_schedule: bool, interval_hours: int, retention_count: int
) -> RetentionPolicy:
    """The rules given; with none and ``by_schedule``, the schedule's; else keep-last
    ``retention_count`` (``resolve_policy``, which refuses an empty policy)."""
    if by_schedule and rules.is_unset:
        rules = retention_by_schedule(interval_hours, retention_count)
    return resolve_policy(rules, retention_count)
