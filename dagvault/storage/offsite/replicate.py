"""Copy the backups of the local backup directory that a target lacks, and measure lag.

``replicate`` uploads, oldest first (a delta's parent is always there before it), every
local backup with valid metadata that did not fail verification and is not complete at
the target yet; a delta whose parent is neither at the target nor copied in this run is
skipped with the reason. ``lag`` compares the newest such local backup with the newest
complete backup at the target.

The outcome of the last run per target is kept in ``<backup dir>/.dagvault-replication.json``
(``read_status``), which a metrics endpoint can serve without touching the network:
``lag_seconds`` (0 when the target has the newest backup; None when it has none) and
``missing`` (local backups not at the target).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault import lock
from dagvault.catalog import CatalogEntry, list_backups
from dagvault.errors import VerificationError
from dagvault.fsio import write_atomic
from dagvault.storage import Store
from dagvault.storage.offsite.objects import list_target, upload_backup
from dagvault.storage.throttle import Throttle

STATUS_FILE = ".dagvault-replication.json"


@dataclass
class ReplicationReport:
    target: str
    checked_at: str
    local_newest: int | None  # unix seconds of the newest local backup
    target_newest: int | None  # … and of the newest complete backup at the target
    missing: int  # local backups still not at the target
    copied: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # backup -> why not copied
    bytes_copied: int = 0
    duration_seconds: float = 0.0

    @property
    def lag_seconds(self) -> int | None:
        """How far the target is behind the local directory; None if it holds nothing."""
        if self.local_newest is None:
            return 0
        if self.target_newest is None:
            return None
        return max(0, self.local_newest - self.target_newest)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "lag_seconds": self.lag_seconds}


def _eligible(backup_dir: Path) -> list[CatalogEntry]:
    """Local backups worth copying, oldest first."""
    entries = [
        e
        for e in list_backups(backup_dir)
        if e.info is not None and e.info.verification.status != "failed"
    ]
    return entries[::-1]


def _newest(entries: list[CatalogEntry]) -> int | None:
    return max((e.timestamp for e in entries), default=None)


def lag(backup_dir: Path, store: Store) -> ReplicationReport:
    """Where ``store`` stands against ``backup_dir``, without copying anything."""
    local = _eligible(backup_dir)
    at_target = list_target(store).entries
    names = {e.path.name for e in at_target}
    return ReplicationReport(
        target=store.url,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        local_newest=_newest(local),
        target_newest=_newest(at_target),
        missing=sum(e.path.name not in names for e in local),
    )


def replicate(
    backup_dir: Path, store: Store, key: bytes | None, *, throttle: Throttle | None = None
) -> ReplicationReport:
    """Copy what ``store`` lacks (encrypted with ``key`` if given; uploads at most at
    ``throttle``'s rate); the report says what was copied or skipped and the lag
    afterwards. Holds the local directory's shared lock, so no cleanup removes a backup
    while it is being copied."""
    started = time.monotonic()
    copied: list[str] = []
    skipped: dict[str, str] = {}
    copied_bytes = 0
    with lock.hold(backup_dir, "replicate", shared=True):
        present = {e.path.name for e in list_target(store).entries}
        for entry in _eligible(backup_dir):
            name = entry.path.name
            if name in present:
                continue
            parent = entry.info.metadata.get("parent") if entry.info else None
            if entry.info and entry.info.backup_type != "Full" and parent not in present:
                skipped[name] = f"its parent {parent} is not at the target"
                continue
            try:
                upload_backup(entry.path, entry.info, store, key, throttle=throttle)  # type: ignore[arg-type]
            except VerificationError as exc:
                # This backup is damaged; the others may still be copied. A storage error
                # (network, permission, missing bucket) concerns the target: it ends the run.
                skipped[name] = exc.message
                continue
            present.add(name)
            copied.append(name)
            copied_bytes += entry.file_size
        report = lag(backup_dir, store)
    report.copied, report.skipped, report.bytes_copied = copied, skipped, copied_bytes
    report.duration_seconds = round(time.monotonic() - started, 3)
    write_status(backup_dir, report)
    return report


def write_status(backup_dir: Path, report: ReplicationReport) -> None:
    status = read_status(backup_dir)
    status[report.target] = {
        k: v
        for k, v in report.to_json().items()
        if k in ("checked_at", "local_newest", "target_newest", "missing", "lag_seconds")
    }
    write_atomic(backup_dir / STATUS_FILE, json.dumps(status, indent=2, sort_keys=True).encode())


def read_status(backup_dir: Path) -> dict[str, dict[str, Any]]:
    """The last replication outcome per target (empty before the first run)."""
    try:
        status = json.loads((backup_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}
