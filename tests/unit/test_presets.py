"""Presets (BACKUP_PRESET) and retention by schedule: the description's production,
development and critical schedules, and why "keep 30" counts days, not files.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_presets.py."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from _helpers import at, entry

from dagvault.catalog import CatalogEntry
from dagvault.config import load_settings
from dagvault.errors import ConfigError
from dagvault.presets import prune_policy, retention_by_schedule
from dagvault.retention import RetentionPolicy, plan_retention


@pytest.mark.parametrize(
    ("preset", "interval", "keep"),
    [("production", 24, 30), ("development", 168, 7), ("critical", 1, 72)],
)
def test_a_preset_sets_the_interval_and_the_retention(
    preset: str, interval: int, keep: int
) -> None:
    settings = load_settings(environ={"BACKUP_PRESET": preset})
    assert (settings.preset, settings.interval_hours, settings.retention_count) == (
        preset,
        interval,
        keep,
    )


def test_explicit_settings_win_over_the_preset(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"BACKUP_PRESET": "development", "BACKUP_RETENTION_COUNT": "3"}
    )
    assert (settings.interval_hours, settings.retention_count) == (168, 3)
    config = tmp_path / "dagvault.json"
    config.write_text(json.dumps({"backup": {"preset": "critical", "interval_hours": 6}}))
    settings = load_settings(config_file=config, environ={})
    assert (settings.interval_hours, settings.retention_count) == (6, 72)
    assert load_settings({"interval_hours": 2}, config_file=config, environ={}).interval_hours == 2


def test_an_unknown_preset_is_refused_naming_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match="BACKUP_PRESET: expected one of production"):
        load_settings(environ={"BACKUP_PRESET": "nightly"})


def test_the_retention_period_is_the_calendar_period_the_interval_fits() -> None:
    assert retention_by_schedule(1, 72) == RetentionPolicy(keep_hourly=72)
    assert retention_by_schedule(24, 30) == RetentionPolicy(keep_daily=30)
    assert retention_by_schedule(12, 30) == RetentionPolicy(keep_daily=30)
    assert retention_by_schedule(168, 7) == RetentionPolicy(keep_weekly=7)
    assert retention_by_schedule(720, 12) == RetentionPolicy(keep_monthly=12)
    schedule = {"interval_hours": 24, "retention_count": 30}
    # Rules given on the command line win; without by_schedule, keep-last is the count.
    given = RetentionPolicy(keep_last=2)
    assert prune_policy(given, by_schedule=True, **schedule) == given
    assert prune_policy(RetentionPolicy(), by_schedule=False, **schedule) == RetentionPolicy(
        keep_last=30
    )


def hourly_history(days: int) -> list[CatalogEntry]:
    """A full backup at midnight and an incremental every other hour, each on the one
    before it, for ``days`` days from 2026-01-01 (UTC)."""
    start, made = at("2026-01-01T00:00"), []
    for hour in range(days * 24):
        when = start + int(timedelta(hours=hour).total_seconds())
        name = f"b_{hour:04d}.db"
        if hour % 24 == 0:
            made.append(entry(name, when, "Full", status="verified", order=hour))
        else:
            made.append(entry(name, when, "Incremental", parent=made[-1].path.name, order=hour))
    return made


def test_production_keeps_thirty_days_through_hourly_incrementals() -> None:
    history = hourly_history(40)
    policy = prune_policy(
        RetentionPolicy(), by_schedule=True, interval_hours=24, retention_count=30
    )
    kept = plan_retention(history, policy).keep
    fulls = sorted(e.path.name for e in kept if e.info and e.info.backup_type == "Full")
    assert len(fulls) == 30 and fulls[0] == f"b_{10 * 24:04d}.db"  # days 11 to 40
    # keep-last 30 on the same history would keep barely more than one day of it.
    by_count = plan_retention(history, RetentionPolicy(keep_last=30)).keep
    assert min(e.timestamp for e in by_count) >= at("2026-02-08T00:00")
