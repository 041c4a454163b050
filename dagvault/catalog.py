"""What backups a directory holds, newest first (``list_backups``, `dagvault list`).

A data file is a backup candidate if it ends in ``.db`` or has a ``.meta`` sidecar.
Without readable metadata it is still listed (the documented fallback) with its
size, a timestamp taken from its name or mtime, and the reason it cannot be trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagvault.errors import VerificationError
from dagvault.meta import META_SUFFIX, BackupInfo, read_meta

_NAME_TIMESTAMP = re.compile(r"_(\d{9,})(?:_\d+)?\.(?:db|incr|diff)(?:\.zst)?$")
DATA_SUFFIXES = (".db", ".db.zst", ".incr", ".incr.zst", ".diff", ".diff.zst")
# ``<db>.pre_restore_<unix-seconds>[_n]``: the copy a restore or import takes of the
# database it replaces, beside that database (see restore.py).
PRE_RESTORE_MARK = ".pre_restore_"
_PRE_RESTORE_NAME = re.compile(r"\.pre_restore_(\d{9,})(?:_\d+)?$")
BACKUP, PRE_RESTORE = "backup", "pre-restore"


@dataclass(frozen=True)
class CatalogEntry:
    path: Path
    file_size: int
    timestamp: int
    info: BackupInfo | None
    problem: str | None = None
    # Where the backup is when it is not the local ``path`` (a URL at a storage target;
    # ``path`` then holds only its name, which parent links refer to).
    location: str | None = None
    # BACKUP, or PRE_RESTORE for a database's pre-restore copy (its own retention rule).
    kind: str = BACKUP

    @property
    def where(self) -> str:
        return self.location or str(self.path)

    @property
    def verified(self) -> bool:
        return self.info is not None and self.info.verified

    @property
    def sort_key(self) -> tuple[int, str, str]:
        created = self.info.created_at if self.info else ""
        return (self.timestamp, created, self.path.name)

    def to_json(self) -> dict[str, Any]:
        """BackupInfo's fields (typed as documented, so that its clients
        can read every entry) plus dagvault's. An entry without readable metadata has the
        type and compression its file name says, and "" for what only metadata knows."""
        info = self.info
        name = self.path.name
        return {
            "timestamp": self.timestamp,
            "backup_path": self.where,
            "database_path": info.database_path if info else "",
            "file_size": self.file_size,
            "total_transactions": info.total_transactions if info else 0,
            "total_nodes": info.total_nodes if info else 0,
            "backup_type": info.backup_type if info else type_in_name(name),
            "compression_enabled": info.compression_enabled if info else name.endswith(".zst"),
            "checksum": info.checksum if info else "",
            "metadata": info.metadata if info else {},
            "parent": info.metadata.get("parent") if info else None,
            "base_full": info.metadata.get("base_full") if info else None,
            "created_at": info.created_at if info else None,
            "description": info.metadata.get("description", "") if info else "",
            "verification": info.verification.status if info else "unverified",
            "has_metadata": info is not None,
            "problem": self.problem,
            "kind": self.kind,
        }


def _candidates(directory: Path) -> list[Path]:
    found = set()
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            continue  # temp files, locks
        if entry.name.endswith(META_SUFFIX):
            data = entry.with_name(entry.name[: -len(META_SUFFIX)])
            if data.is_file():
                found.add(data)
        elif entry.name.endswith(DATA_SUFFIXES) and entry.is_file():
            found.add(entry)
    return list(found)


def type_in_name(name: str) -> str:
    """The backup type a data file's suffix stands for (``.incr``, ``.diff``, else full)."""
    stem = name.removesuffix(".zst")
    return {".incr": "Incremental", ".diff": "Differential"}.get(Path(stem).suffix, "Full")


def timestamp_in_name(name: str) -> int | None:
    """The unix seconds in a backup's name (``<NAME>_<ts>[_n].<suffix>``), if any."""
    match = _NAME_TIMESTAMP.search(name) or _PRE_RESTORE_NAME.search(name)
    return int(match[1]) if match else None


def entry_for(path: Path) -> CatalogEntry:
    size = path.stat().st_size
    kind = PRE_RESTORE if _PRE_RESTORE_NAME.search(path.name) else BACKUP
    try:
        info = read_meta(path)
    except VerificationError as exc:
        named = timestamp_in_name(path.name)
        timestamp = named if named is not None else int(path.stat().st_mtime)
        return CatalogEntry(path, size, timestamp, None, exc.message, kind=kind)
    return CatalogEntry(path, size, info.timestamp, info, kind=kind)


def pre_restore_copies(database: Path) -> list[CatalogEntry]:
    """The pre-restore copies of ``database`` (beside it), newest first."""
    directory = database.absolute().parent
    if not directory.is_dir():
        return []
    entries = []
    for path in directory.iterdir():
        name, rest = path.name[: len(database.name)], path.name[len(database.name) :]
        if name != database.name or not _PRE_RESTORE_NAME.fullmatch(rest):
            continue  # also skips its .meta and .pages
        try:
            entries.append(entry_for(path))
        except FileNotFoundError:
            continue  # removed by a concurrent restore or cleanup while we listed
    entries.sort(key=lambda e: e.sort_key, reverse=True)
    return entries


def list_backups(directory: Path, *, limit: int | None = None) -> list[CatalogEntry]:
    """Backups in ``directory``, newest first; an absent directory holds none."""
    if not directory.is_dir():
        return []
    entries = []
    for path in _candidates(directory):
        try:
            entries.append(entry_for(path))
        except FileNotFoundError:
            continue  # removed by a concurrent cleanup while we listed
    entries.sort(key=lambda e: e.sort_key, reverse=True)
    return entries[:limit] if limit is not None else entries


def list_with_pre_restore(
    directory: Path, database: Path | None, *, limit: int | None = None
) -> list[CatalogEntry]:
    """``list``: the backups of ``directory`` and the pre-restore copies of ``database``
    (once, if the database lies in the directory), newest first."""
    entries = list_backups(directory)
    if database is not None:
        seen = {e.path.resolve() for e in entries}
        entries += [e for e in pre_restore_copies(database) if e.path.resolve() not in seen]
        entries.sort(key=lambda e: e.sort_key, reverse=True)
    return entries[:limit] if limit is not None else entries
