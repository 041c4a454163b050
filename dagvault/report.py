"""The health report: how a backup directory has fared, from what it already records.

Two sources, both in the backup directory: the operations journal (dagvault.journal: one
line per backup, verify, restore, cleanup, prune, export, import and restore drill, with
its outcome and, since they were added, its ``seconds`` and ``details``) and the backups'
``.meta`` sidecars (time, size, kind, transactions, duration, the ledger's pages). Nothing
else is needed, so a report of any directory can be made after the fact, on any host.

``build_report`` is a pure function of those records, the free space and the time, so the
computations are tested on synthetic journals; ``health_report`` reads them for a
directory. Rendering (text, Markdown, charts) is dagvault.report_render.

What the report decides (docs/production.md#health-report):

* A run counts once: its ``success`` or ``failure`` line. A backup whose data-quality gate
  failed wrote a ``success`` line and a ``quality_gate_failed`` line (before it, when the
  gate ran while the backup was written): it counts as a failed run.
* "Recent" is the last ``RECENT_DAYS`` days (a week: the report runs weekly). A failure
  rate of recent runs above ``max_failure_rate`` is a warning, and the rate of the rest
  of the window is shown beside it, to tell a rise from a steady state.
* RPO over time: at each backup, the age the newest backup had just before it was taken
  (the gap since the previous one): the data an incident at that moment would have lost.
  The current RPO is the age of the newest backup now.
* The disk forecast divides the free space of BACKUP_DIR's filesystem by its net growth:
  bytes of backups taken recently (their ``.meta``) minus the bytes cleanup and prune
  freed meanwhile (their journal details), per day. Not growing: no forecast, no warning.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagvault import journal
from dagvault.catalog import list_backups
from dagvault.errors import ConfigError, storage_error
from dagvault.storage.backup_store import backup_store

RECENT_DAYS = 7
DAY = 86_400.0
# A newest backup older than this many backup intervals is late (the schedule stopped).
LATE_INTERVALS = 2


@dataclass(frozen=True)
class Entry:
    """One journal line."""

    time: datetime
    operation: str
    outcome: str
    seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackupPoint:
    """One backup, from its .meta."""

    time: datetime
    name: str
    kind: str
    file_size: int
    transactions: int
    seconds: float
    ledger_bytes: int | None  # page_size × page_count of the ledger it was taken from


@dataclass(frozen=True)
class Thresholds:
    max_failure_rate: float = 0.05
    min_disk_days: float = 30.0
    interval_hours: int = 24


@dataclass
class OperationStats:
    operation: str
    runs: int
    failed: int
    success_rate: float | None  # None without runs
    median_seconds: float | None
    max_seconds: float | None


@dataclass
class HealthReport:
    backup_dir: str
    generated_at: datetime
    window_days: int
    operations: list[OperationStats]
    failure_rate_recent: float | None
    failure_rate_before: float | None
    backups: list[BackupPoint]  # in the window, oldest first
    runs_per_day: dict[str, dict[str, int]]  # ISO date -> runs, failed (in the window)
    rpo: list[tuple[datetime, float]]  # (backup time, seconds since the previous backup)
    current_rpo_seconds: float | None
    ledger_growth_per_day: dict[str, float | None]  # transactions, bytes
    drills: dict[str, Any]
    disk: dict[str, Any]
    warnings: list[str]
    charts: list[str] = field(default_factory=list)  # files rendered (report_render)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["generated_at"] = _iso(self.generated_at)
        document["backups"] = [{**asdict(b), "time": _iso(b.time)} for b in self.backups]
        document["rpo"] = [{"time": _iso(t), "seconds": s} for t, s in self.rpo]
        return document


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def read_journal(directory: Path) -> list[Entry]:
    """Every readable line of ``directory``'s journal, oldest first; damaged or partial
    lines (a writer killed mid-line) are skipped, as the metrics do."""
    path = journal.journal_path(directory)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:  # unreadable (permissions), or BACKUP_DIR is a file
        raise storage_error(exc, "reading", str(path)) from exc
    entries = []
    for line in raw.splitlines():
        try:
            item = json.loads(line)
            seconds = item.get("seconds")
            details = item.get("details")
            when = datetime.fromisoformat(item["time"])
            entries.append(
                Entry(
                    # dagvault writes UTC with its offset; a line without one is read as UTC.
                    when if when.tzinfo else when.replace(tzinfo=UTC),
                    str(item["operation"]),
                    str(item["outcome"]),
                    float(seconds) if isinstance(seconds, int | float) else None,
                    details if isinstance(details, dict) else {},
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return sorted(entries, key=lambda e: e.time)


def backup_points(directory: Path) -> list[BackupPoint]:
    """The directory's backups with a readable .meta, oldest first (in the catalog's
    order: two backups of one second keep the order they were taken in)."""
    points = []
    for entry in reversed(list_backups(directory)):
        info = entry.info
        if info is None:
            continue
        pages = (info.page_size or 0) * (info.page_count or 0)
        points.append(
            BackupPoint(
                datetime.fromtimestamp(info.timestamp, UTC),
                entry.path.name,
                info.backup_type,
                info.file_size,
                info.total_transactions,
                info.duration_seconds,
                pages or None,
            )
        )
    return points


def _runs(entries: Iterable[Entry]) -> tuple[int, int]:
    """(runs, failed runs) of journal lines (see the module's docstring)."""
    counts = Counter(e.outcome for e in entries)
    runs = counts[journal.SUCCESS] + counts[journal.FAILURE]
    failed = min(runs, counts[journal.FAILURE] + counts[journal.QUALITY_GATE_FAILED])
    return runs, failed


def _rate(entries: Sequence[Entry]) -> float | None:
    runs, failed = _runs(entries)
    return failed / runs if runs else None


def operation_stats(entries: Sequence[Entry]) -> list[OperationStats]:
    stats = []
    for name in sorted({e.operation for e in entries}):
        mine = [e for e in entries if e.operation == name]
        runs, failed = _runs(mine)
        seconds = [e.seconds for e in mine if e.seconds is not None and e.outcome != "failure"]
        stats.append(
            OperationStats(
                name,
                runs,
                failed,
                (runs - failed) / runs if runs else None,
                round(statistics.median(seconds), 3) if seconds else None,
                round(max(seconds), 3) if seconds else None,
            )
        )
    return stats


def runs_per_day(entries: Sequence[Entry]) -> dict[str, dict[str, int]]:
    days: dict[str, list[Entry]] = {}
    for entry in entries:
        days.setdefault(entry.time.date().isoformat(), []).append(entry)
    per_day = {}
    for day, mine in sorted(days.items()):
        runs, failed = _runs(mine)
        per_day[day] = {"runs": runs, "failed": failed}
    return per_day


def rpo_series(backups: Sequence[BackupPoint]) -> list[tuple[datetime, float]]:
    return [(b.time, (b.time - a.time).total_seconds()) for a, b in itertools.pairwise(backups)]


def ledger_growth(backups: Sequence[BackupPoint]) -> dict[str, float | None]:
    """Transactions and ledger bytes per day between the first and the last backup."""
    growth: dict[str, float | None] = {"transactions": None, "bytes": None}
    if len(backups) < 2:
        return growth
    first, last = backups[0], backups[-1]
    days = (last.time - first.time).total_seconds() / DAY
    if days <= 0:
        return growth
    growth["transactions"] = round((last.transactions - first.transactions) / days, 1)
    if first.ledger_bytes is not None and last.ledger_bytes is not None:
        growth["bytes"] = round((last.ledger_bytes - first.ledger_bytes) / days, 1)
    return growth


def drill_summary(entries: Sequence[Entry]) -> dict[str, Any]:
    """Restore drills (journal operation ``drill``, details ``rto_seconds`` and ``backup``)."""
    drills = [e for e in entries if e.operation == "drill"]
    rtos = [
        float(e.details["rto_seconds"])
        for e in drills
        if isinstance(e.details.get("rto_seconds"), int | float)
    ]
    last = drills[-1] if drills else None
    return {
        "runs": len(drills),
        "failed": sum(e.outcome != journal.SUCCESS for e in drills),
        "last_time": _iso(last.time) if last else None,
        "last_outcome": last.outcome if last else None,
        "last_backup": last.details.get("backup") if last else None,
        "last_rto_seconds": last.details.get("rto_seconds") if last else None,
        "median_rto_seconds": round(statistics.median(rtos), 3) if rtos else None,
        "series": [
            {
                "time": _iso(e.time),
                "outcome": e.outcome,
                "rto_seconds": e.details.get("rto_seconds"),
            }
            for e in drills
        ],
    }


def disk_forecast(
    backups: Sequence[BackupPoint],
    entries: Sequence[Entry],
    free_bytes: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Days until the filesystem fills at the recent net growth (see the docstring)."""
    since = now - timedelta(days=RECENT_DAYS)
    recent = [b for b in backups if b.time >= since]
    forecast: dict[str, Any] = {
        "free_bytes": free_bytes,
        "growth_bytes_per_day": None,
        "days_until_full": None,
    }
    if not recent:
        return forecast
    # From the first recent backup (or the week's start, if older backups show the
    # directory was in use then) to now; at least a day, so that a new directory's first
    # backups are not read as a day's worth each.
    start = since if len(recent) < len(backups) else recent[0].time
    days = max((now - start).total_seconds() / DAY, 1.0)
    freed = sum(
        int(e.details.get("bytes_freed", 0))
        for e in entries
        if e.time >= start
        and e.operation in ("cleanup", "prune")
        and isinstance(e.details.get("bytes_freed", 0), int)
    )
    growth = (sum(b.file_size for b in recent) - freed) / days
    forecast["growth_bytes_per_day"] = round(growth, 1)
    if growth > 0 and free_bytes is not None:
        forecast["days_until_full"] = round(free_bytes / growth, 1)
    return forecast


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _warnings(report: HealthReport, thresholds: Thresholds, now: datetime) -> list[str]:
    warnings = []
    recent = report.failure_rate_recent
    if recent is not None and recent > thresholds.max_failure_rate:
        before = report.failure_rate_before
        if before is None:
            trend = "no earlier runs"
        elif recent == before:
            trend = "as before"
        else:
            trend = f"{'rising' if recent > before else 'falling'} from {_percent(before)}"
        warnings.append(
            f"Failure rate {_percent(recent)} in the last {RECENT_DAYS} days ({trend}), "
            f"above {_percent(thresholds.max_failure_rate)}"
        )
    days = report.disk["days_until_full"]
    if days is not None and days < thresholds.min_disk_days:
        warnings.append(
            f"The backup filesystem fills in about {days:.0f} days at the current growth "
            f"(threshold {thresholds.min_disk_days:g} days)"
        )
    if report.drills["last_outcome"] not in (None, journal.SUCCESS):
        warnings.append(f"The last restore drill ({report.drills['last_time']}) failed")
    age = report.current_rpo_seconds
    late = LATE_INTERVALS * thresholds.interval_hours * 3600
    if age is not None and age > late:
        warnings.append(
            f"The newest backup is {age / 3600:.0f} h old (backups are due every "
            f"{thresholds.interval_hours} h)"
        )
    return warnings


def build_report(
    backup_dir: str,
    entries: Sequence[Entry],
    all_backups: Sequence[BackupPoint],
    *,
    free_bytes: int | None,
    now: datetime,
    window_days: int = 30,
    thresholds: Thresholds | None = None,
) -> HealthReport:
    """The report of a directory's journal ``entries`` and backups (oldest first) as of
    ``now``, over the last ``window_days`` days."""
    thresholds = thresholds or Thresholds()
    start = now - timedelta(days=window_days)
    recent_start = now - timedelta(days=RECENT_DAYS)
    window = [e for e in entries if start <= e.time <= now]
    backups = [b for b in all_backups if start <= b.time <= now]
    newest = all_backups[-1].time if all_backups else None
    report = HealthReport(
        backup_dir=backup_dir,
        generated_at=now,
        window_days=window_days,
        operations=operation_stats(window),
        failure_rate_recent=_rate([e for e in window if e.time >= recent_start]),
        failure_rate_before=_rate([e for e in window if e.time < recent_start]),
        backups=backups,
        runs_per_day=runs_per_day(window),
        rpo=rpo_series(backups),
        current_rpo_seconds=(now - newest).total_seconds() if newest else None,
        ledger_growth_per_day=ledger_growth(backups),
        drills=drill_summary(window),
        disk=disk_forecast(all_backups, entries, free_bytes, now),
        warnings=[],
    )
    report.warnings = _warnings(report, thresholds, now)
    return report


def free_space(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``directory``'s filesystem (the
    nearest existing parent's, for a directory not made yet)."""
    for place in (directory, *directory.absolute().parents):
        try:
            stat = os.statvfs(place)
        except OSError:
            continue
        return stat.f_bavail * stat.f_frsize
    return None


def report_directory(backup_dir: Path | str) -> Path:
    """The local backup directory a report reads; a storage target has no journal."""
    directory = backup_store(backup_dir).local_path
    if directory is None:
        raise ConfigError(
            f"BACKUP_DIR {backup_dir} is a storage target; the health report reads the "
            "journal of the local backup directory",
            "Point --backup-dir / BACKUP_DIR at the local directory the backups are taken in.",
        )
    return directory


def health_report(
    directory: Path,
    *,
    window_days: int = 30,
    thresholds: Thresholds | None = None,
    now: datetime | None = None,
) -> HealthReport:
    """The report of the local backup directory ``directory`` (one that does not exist
    yet gives an empty report)."""
    return build_report(
        str(directory),
        read_journal(directory),
        backup_points(directory),
        free_bytes=free_space(directory),
        now=now or datetime.now(UTC),
        window_days=window_days,
        thresholds=thresholds,
    )
