"""Recovery points: the moments a directory's backups can bring the ledger back to, and the
one to restore for a point in time (`dagvault restore --at TIME`).

Every backup a restore would accept (readable metadata, not failed) is a recovery point at the
moment its snapshot began (``created_at``); a delta is one too, restored through its chain. The
window is the span from the oldest point to the newest. For a TIME in the window the newest
point at or before it is chosen. A TIME before the window, or in the future, is an error that
names the window. A TIME after the newest point (and not in the future) chooses the newest point,
with a warning saying how much earlier it is: the changes after it are in no backup.

Points are shown to the microsecond (``created_at``'s precision), so that a time copied from
`dagvault list` chooses that very point.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dagvault.catalog import BACKUP, CatalogEntry
from dagvault.errors import BackupNotFound, ConfigError
from dagvault.retention import restorable

_EPOCH = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class RecoveryPoint:
    at: float  # unix seconds, microsecond precision
    backup: CatalogEntry

    @property
    def iso(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).isoformat(timespec="microseconds")

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.iso,
            "backup_path": self.backup.where,
            "backup_type": self.backup.info.backup_type if self.backup.info else None,
        }


@dataclass(frozen=True)
class Choice:
    point: RecoveryPoint
    warning: str | None = None


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def parse_time(text: str) -> float:
    """ISO 8601 (``2026-12-06T05:50:04Z``, an offset, or no zone = UTC) or unix seconds."""
    raw = text.strip()
    if _EPOCH.fullmatch(raw):
        return float(raw)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--at {text!r} is not a time",
            "Give ISO 8601 (2026-12-06T05:50:04Z, or with an offset; without one it is UTC) "
            "or unix seconds.",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _moment(entry: CatalogEntry) -> float:
    created = entry.info.created_at if entry.info else ""
    try:
        return datetime.fromisoformat(created).timestamp()
    except ValueError:
        return float(entry.timestamp)


def recovery_points(entries: Iterable[CatalogEntry]) -> list[RecoveryPoint]:
    """The restorable backups of a listing as recovery points, oldest first."""
    points = [RecoveryPoint(_moment(e), e) for e in entries if e.kind == BACKUP and restorable(e)]
    return sorted(points, key=lambda p: (p.at, p.backup.sort_key))


def describe_window(points: list[RecoveryPoint]) -> str:
    if not points:
        return "no recovery point"
    return f"{points[0].iso} to {points[-1].iso} ({len(points)} recovery points)"


def window_json(points: list[RecoveryPoint]) -> dict[str, Any] | None:
    """The window as `list --json` and the API show it (None: no recovery point)."""
    if not points:
        return None
    return {"from": points[0].iso, "to": points[-1].iso, "recovery_points": len(points)}


def listing_fields(points: list[RecoveryPoint]) -> Callable[[CatalogEntry], dict[str, Any]]:
    """The fields `list --json` and GET /backup/list add to an entry: its recovery point's
    moment (None: no recovery point, e.g. a failed backup or a pre-restore copy) and the
    window of all ``points`` (also those past a --limit)."""
    moments = {p.backup.where: p.iso for p in points}
    window = window_json(points)

    def fields(entry: CatalogEntry) -> dict[str, Any]:
        return {"recovery_point_at": moments.get(entry.where), "recovery_window": window}

    return fields


def point_at(entries: Iterable[CatalogEntry], at: str, *, now: float | None = None) -> Choice:
    """`restore --at`: the point to restore among a backup directory's ``entries``."""
    return choose(recovery_points(entries), parse_time(at), now=now)


def choose(points: list[RecoveryPoint], when: float, *, now: float | None = None) -> Choice:
    """The point to restore for the ledger as it was at ``when``."""
    if not points:
        raise BackupNotFound(
            "No recovery point: the backup directory holds no backup a restore would accept",
            "Take a backup first (dagvault backup), or check BACKUP_DIR.",
        )
    window = describe_window(points)
    if when > (now if now is not None else time.time()):
        raise ConfigError(
            f"--at {iso(when)} is in the future; the recovery window is {window}",
            "Give a time within the window.",
        )
    if when < points[0].at:
        raise ConfigError(
            f"--at {iso(when)} is before the oldest recovery point; the recovery window is "
            f"{window}",
            "Give a time within the window (older backups were pruned or never taken).",
        )
    chosen = [p for p in points if p.at <= when][-1]
    newest = points[-1]
    if chosen is newest and when - newest.at >= 1:
        return Choice(
            chosen,
            f"the newest recovery point ({newest.iso}) is {when - newest.at:.0f} s before "
            f"{iso(when)}: changes made after it are in no backup",
        )
    return Choice(chosen)
