"""Where backups are kept: one small interface, one module per backend.

Code outside this package never asks whether a location is a URL: it asks the store
(``backup_store.backup_store(target)`` for a backup directory or a storage target,
``backup_store.stored_backup(location)`` for one backup in either). Off-site copies
(replicate; list, verify, restore, prune and fetch at a target) are ``offsite``.

A *target* is a local directory path (the classic backup directory, handled by the rest
of the core directly) or a URL handled through a ``Store``:

* ``file:///mnt/disk2/backups`` — a directory (a second disk, an NFS mount): ``local.py``;
* ``s3://bucket/prefix``, ``gs://bucket/prefix`` and any other fsspec protocol:
  ``fsspec_store.py``.

Error contract of every ``Store`` method (the callers rely on it):

* a missing object raises ``BackupNotFound`` (``delete`` treats it as done);
* a refused request (permission, bad credentials, no such bucket) raises a
  ``StorageError`` that is not retryable;
* a transport failure that outlived the backend's own retries raises a ``StorageError``
  with ``retryable`` set, so the Prefect task tries again later;
* ``upload`` and ``write`` make an object visible whole or not at all: a reader never
  sees a prefix of it. Callers add the second half of atomicity: a backup counts only
  once its ``.meta`` (written last) exists and matches the data object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol
from urllib.parse import urlsplit

from dagvault.errors import ConfigError

if TYPE_CHECKING:
    from dagvault.storage.throttle import Throttle


@dataclass(frozen=True)
class StoredObject:
    name: str
    size: int


class Store(Protocol):
    url: str  # the target as the user wrote it, for messages

    def list(self) -> dict[str, StoredObject]:
        """Objects directly under the target, by name; an absent target holds none."""
        ...

    def upload(self, local: Path, name: str, *, throttle: Throttle | None = None) -> None:
        """Store the file ``local`` as ``name``, replacing an object of that name; at most
        at ``throttle``'s rate when one is given."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Store ``data`` as ``name``, replacing an object of that name."""
        ...

    def read(self, name: str) -> bytes: ...

    def open(self, name: str) -> BinaryIO:
        """A binary stream of ``name`` for reading it in chunks (the caller closes it)."""
        ...

    def delete(self, name: str) -> None: ...

    def location(self, name: str) -> str:
        """The URL of ``name`` (what list and the logs show)."""
        ...


def is_url(target: str | Path) -> bool:
    """A target with a scheme (``s3://``, ``gs://``, ``file://``) goes through a Store."""
    return isinstance(target, str) and "://" in target


def as_target(text: str) -> Path | str:
    """A target given as text (a flow parameter): a URL stays text, a path becomes Path."""
    return text if is_url(text) else Path(text)


def canonical(place: Path | str) -> str:
    """A stable name for a place (a database, a backup directory, a target): a URL as
    written, a path made absolute with ``~`` and symlinks resolved."""
    return str(place) if is_url(place) else str(Path(place).expanduser().resolve())


def parent_of(backup: str) -> Path | str:
    """The backup directory or target holding the backup ``backup`` names."""
    return split_location(backup)[0] if is_url(backup) else Path(backup).parent


def split_location(location: str) -> tuple[str, str]:
    """``s3://bucket/prefix/name.db`` → (``s3://bucket/prefix``, ``name.db``)."""
    target, _, name = location.rstrip("/").rpartition("/")
    if not name or target.endswith(":/"):
        raise ConfigError(
            f"{location} names no backup inside a target",
            "Name a backup as TARGET/NAME, e.g. s3://bucket/prefix/blockchain_1704067200.db "
            "(`dagvault list --backup-dir TARGET` shows the names).",
        )
    return target, name


def open_store(target: str) -> Store:
    """The Store for a target URL; a bad URL or a protocol without its package is a
    ConfigError."""
    parts = urlsplit(target)
    if parts.scheme == "file":
        from dagvault.storage.local import LocalStore

        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{target}: a file:// URL must name a local path (file:///dir)")
        return LocalStore(target, Path(parts.path))
    from dagvault.storage.fsspec_store import FsspecStore

    return FsspecStore(target)
