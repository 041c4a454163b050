"""The restore history of a database: the baseline its next backups' gate compares with.

A restore (or import-sql) is a deliberate step back, so the ``transactions_not_decreased``
gate of the backups that follow compares with the restored state, not with the last good
backup before it. Each restore appends an event to ``.<db>.dagvault-restores.json``
beside the database (hidden, like the lock file; written atomically and signed like a
sidecar): when, from what, the transactions before and after, and the database file's
identity (device:inode).

An event counts for a backup of that same file (its path and identity: a database put in
place with cp then mv is another file, and the history does not travel with a copied
file) taken after it, and only until a good backup is newer than it: the next backup that
passes supersedes it. A decrease no restore explains still fails. The newest
``HISTORY_LIMIT`` events are kept, so re-gating older backups (``verify --quality --all``)
still finds the restores between them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dagvault.errors import VerificationError
from dagvault.fsio import write_atomic
from dagvault.meta import BackupInfo, sidecar_checksum

log = logging.getLogger("dagvault")
HISTORY_LIMIT = 100
HISTORY_SUFFIX = ".dagvault-restores.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RestoreEvent:
    restored_at: str  # UTC ISO with microseconds: ordered like BackupInfo.created_at
    source: str  # "backup <path>" or "SQL dump <path>"
    total_transactions: int  # after the restore: the new floor
    transactions_before: int | None  # None: the database had no transactions table
    file_id: str  # the database's device:inode after the restore

    @property
    def went_back(self) -> int:
        return max(0, (self.transactions_before or 0) - self.total_transactions)


def history_path(database: Path) -> Path:
    database = database.absolute()
    return database.with_name(f".{database.name}{HISTORY_SUFFIX}")


def read_history(database: Path) -> list[RestoreEvent]:
    """The recorded restores of ``database``, oldest first; VerificationError when the
    file is unreadable, edited or damaged."""
    path = history_path(database)
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise VerificationError(f"Restore history {path} is unreadable: {exc}") from None
    try:
        if document.get("meta_checksum") != sidecar_checksum(document):
            raise ValueError("its checksum does not match (edited or damaged)")
        return [RestoreEvent(**event) for event in document["restores"]]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"Restore history {path} is invalid: {exc}") from None


def record_restore(database: Path, event: RestoreEvent) -> None:
    """Append ``event`` (an unreadable history is started afresh: it can only make a
    later decrease fail, never pass)."""
    try:
        events = read_history(database)
    except VerificationError:
        events = []
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "database_path": str(database.resolve()),
        "restores": [asdict(e) for e in [*events, event][-HISTORY_LIMIT:]],
    }
    document["meta_checksum"] = sidecar_checksum(document)
    write_atomic(history_path(database), (json.dumps(document, indent=2) + "\n").encode())


def restore_baseline(info: BackupInfo, since: str | None) -> RestoreEvent | None:
    """The newest restore of the backed-up file between ``since`` (the previous good
    backup's ``created_at``; None: there is none) and the backup ``info``."""
    file_id = info.metadata.get("source_file_id")
    try:
        history = read_history(Path(info.database_path))
    except VerificationError as exc:  # fail safe: a decrease is then judged without it
        log.warning("⚠️  %s; restores recorded there are ignored", exc.message)
        return None
    candidates = [
        event
        for event in history
        if event.file_id == file_id
        and event.restored_at < info.created_at
        and (since is None or event.restored_at > since)
    ]
    return max(candidates, key=lambda e: e.restored_at, default=None)
