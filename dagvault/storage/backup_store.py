"""Where backups are kept, whichever kind of place it is: ``backup_store(target)`` for a
backup directory or a storage target, ``stored_backup(location)`` for one backup in
either. Callers ask these what to do instead of asking whether a location is a URL.

* A local directory (a path) is the classic backup directory: the core works on its
  files in place, under its locks, with the operations journal and the pre-restore
  copies of the database.
* A storage target (``s3://``, ``gs://``, ``file://``…) holds backups as objects
  (``dagvault.storage.offsite``): verify, restore and export fetch the backup and its
  chain into a private staging directory first, checking every object on the way; a new
  backup is written in a staging directory and uploaded.

An encrypted object in a local directory (``….enc``: a copy of a target, or the target
itself) is no SQLite file, so ``stored_backup`` reads it as at a ``file://`` target:
fetched, checked, decrypted with the key.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from dagvault import crypto, legacy
from dagvault.catalog import CatalogEntry, list_backups, list_with_pre_restore
from dagvault.errors import BackupNotFound, EncryptionKeyError
from dagvault.restore import RestoreResult, restore_backup
from dagvault.retention import (
    CleanupResult,
    PreRestoreRule,
    RetentionPolicy,
    cleanup_old_backups,
    prune_backups,
)
from dagvault.storage import Store, is_url, open_store, split_location
from dagvault.storage.offsite.objects import fetched, list_target, private_dir
from dagvault.storage.offsite.operations import (
    cleanup_target,
    prune_target,
    restore_from_target,
    verify_at_target,
)
from dagvault.verify import VerifyReport, verify_backup


class BackupStore(ABC):
    """A backup directory or a storage target."""

    target: Path | str  # as configured: a directory's path, a target's URL

    @property
    @abstractmethod
    def local_path(self) -> Path | None:
        """The directory, for what only a local backup directory has (the operations
        journal, the replication status, the permission check of `health`); None for a
        storage target."""

    @property
    def is_local(self) -> bool:
        return self.local_path is not None

    @abstractmethod
    def backups(self) -> list[CatalogEntry]:
        """The backups there, newest first (at a target: the complete ones)."""

    @abstractmethod
    def listing(
        self, database: Path | None, limit: int | None
    ) -> tuple[list[CatalogEntry], dict[str, str]]:
        """What ``dagvault list`` shows: the newest ``limit`` backups (in a local directory
        with the pre-restore copies of ``database``), and the objects that are no backup
        (yet) by name, with why (an upload cut off or running; a target only)."""

    @abstractmethod
    def cleanup(
        self, keep: int, *, dry_run: bool, pre_restore: PreRestoreRule | None
    ) -> CleanupResult:
        """Keep the newest ``keep`` backups (never the newest verified one)."""

    @abstractmethod
    def prune(
        self, policy: RetentionPolicy, *, dry_run: bool, pre_restore: PreRestoreRule | None
    ) -> CleanupResult:
        """Apply the retention ``policy``."""

    @abstractmethod
    def writing_dir(self, staging_root: Path | None) -> contextlib.AbstractContextManager[Path]:
        """The local directory a new backup is written (and verified, and gated) in:
        the backup directory itself, or a private staging directory under
        ``staging_root`` (the system's temp directory by default) that is removed once
        the backup has been uploaded, or has failed."""


class LocalDirectory(BackupStore):
    def __init__(self, directory: Path) -> None:
        self.target = self.directory = directory

    @property
    def local_path(self) -> Path:
        return self.directory

    def backups(self) -> list[CatalogEntry]:
        return list_backups(self.local_path)

    def listing(
        self, database: Path | None, limit: int | None
    ) -> tuple[list[CatalogEntry], dict[str, str]]:
        return list_with_pre_restore(self.local_path, database, limit=limit), {}

    def cleanup(
        self, keep: int, *, dry_run: bool, pre_restore: PreRestoreRule | None
    ) -> CleanupResult:
        return cleanup_old_backups(self.local_path, keep, dry_run=dry_run, pre_restore=pre_restore)

    def prune(
        self, policy: RetentionPolicy, *, dry_run: bool, pre_restore: PreRestoreRule | None
    ) -> CleanupResult:
        return prune_backups(self.local_path, policy, dry_run=dry_run, pre_restore=pre_restore)

    @contextlib.contextmanager
    def writing_dir(self, staging_root: Path | None) -> Iterator[Path]:
        yield self.local_path


class TargetDirectory(BackupStore):
    def __init__(self, url: str) -> None:
        self.target = self.url = url

    @cached_property
    def objects(self) -> Store:
        # Opened on first use: asking a target whether it is local connects to nothing.
        return open_store(self.url)

    @property
    def local_path(self) -> None:
        return None

    def backups(self) -> list[CatalogEntry]:
        return list_target(self.objects).entries

    def listing(
        self, database: Path | None, limit: int | None
    ) -> tuple[list[CatalogEntry], dict[str, str]]:
        catalog = list_target(self.objects)
        return catalog.entries[:limit], catalog.incomplete

    # A target holds no pre-restore copies (they lie beside the database, and the restore
    # that makes one rotates them), so the rule is the local directory's business only.
    def cleanup(
        self, keep: int, *, dry_run: bool, pre_restore: PreRestoreRule | None
    ) -> CleanupResult:
        return cleanup_target(self.objects, keep, dry_run=dry_run)

    def prune(
        self, policy: RetentionPolicy, *, dry_run: bool, pre_restore: PreRestoreRule | None
    ) -> CleanupResult:
        return prune_target(self.objects, policy, dry_run=dry_run)

    def writing_dir(self, staging_root: Path | None) -> contextlib.AbstractContextManager[Path]:
        return private_dir(staging_root, ".dagvault-stage-")


def backup_store(target: Path | str) -> BackupStore:
    """The store of a backup directory (a path) or a storage target (a URL)."""
    if is_url(target):
        return TargetDirectory(str(target))
    return LocalDirectory(Path(target))


class StoredBackup(ABC):
    """One backup, in a local directory or at a storage target.

    Every method takes the key file's path (None: DAGVAULT_ENCRYPTION_KEY, if set) and
    reads the key only when it needs it."""

    given: str  # the backup as the caller named it, for messages
    location: str  # where it is read: its path, or its URL at a target

    @property
    @abstractmethod
    def local_path(self) -> Path | None:
        """The backup's SQLite file, when it is one in a local directory."""

    @property
    def is_local(self) -> bool:
        return self.local_path is not None

    @abstractmethod
    def precheck(self, key_file: Path | None) -> None:
        """Fail before a run starts where no network is needed to tell: a local backup
        that does not exist (BackupNotFound), an encrypted object and no key
        (EncryptionKeyError). A target is asked by the run itself."""

    @abstractmethod
    def verify(
        self, *, key_file: Path | None, staging: Path | None, quick: bool, **local_checks: bool
    ) -> VerifyReport:
        """Verify it and record the outcome in its sidecar. A local backup is checked in
        place (``local_checks``: ``checksum``, ``recheck_quality`` of ``verify_backup``);
        one at a target is fetched into ``staging`` with its chain, every object checked
        against its sidecar's SHA3-256 on the way, and checked like a local one (the
        quality gate runs on local backups only: the flow refuses it for a target)."""

    @abstractmethod
    def restore(self, db_path: Path, *, key_file: Path | None, **options: Any) -> RestoreResult:
        """Restore it over ``db_path`` (``options``: those of ``restore_backup``); one at
        a target is fetched beside the database first."""

    @abstractmethod
    def local_copy(
        self, *, key_file: Path | None, staging: Path | None
    ) -> contextlib.AbstractContextManager[Path]:
        """A local SQLite file of it while the context lasts: the backup itself, or its
        chain fetched and decrypted into a private directory under ``staging``."""

    @abstractmethod
    def sign_legacy(self, key: bytes, staging: Path | None) -> list[str]:
        """Verify it and its chain, then tag the links written before the key was
        configured (``verify --sign-legacy``); returns where tags were written."""


class LocalBackup(StoredBackup):
    def __init__(self, given: str, path: Path) -> None:
        self.given, self.path, self.location = given, path, str(path)

    @property
    def local_path(self) -> Path:
        return self.path

    def precheck(self, key_file: Path | None) -> None:
        if not self.path.is_file():
            raise BackupNotFound(
                f"Backup {self.given} does not exist", "List the backups with `dagvault list`."
            )

    def verify(
        self, *, key_file: Path | None, staging: Path | None, quick: bool, **local_checks: bool
    ) -> VerifyReport:
        key = crypto.load_key(key_file)
        return verify_backup(self.path, quick=quick, key=key, **local_checks)

    def restore(self, db_path: Path, *, key_file: Path | None, **options: Any) -> RestoreResult:
        return restore_backup(self.path, db_path, key=crypto.load_key(key_file), **options)

    @contextlib.contextmanager
    def local_copy(self, *, key_file: Path | None, staging: Path | None) -> Iterator[Path]:
        yield self.path

    def sign_legacy(self, key: bytes, staging: Path | None) -> list[str]:
        return [str(path) for path in legacy.sign_legacy(self.path, key)]


class TargetBackup(StoredBackup):
    def __init__(self, given: str, location: str) -> None:
        target, self.name = split_location(location)
        self.given, self.location, self.store = given, location, TargetDirectory(target)

    @property
    def local_path(self) -> None:
        return None

    def precheck(self, key_file: Path | None) -> None:
        if self.name.endswith(crypto.ENCRYPTED_SUFFIX) and crypto.load_key(key_file) is None:
            raise EncryptionKeyError(
                f"{self.given} is encrypted: it needs the encryption key, and none was given",
                crypto.KEY_HINT,
            )

    def verify(
        self, *, key_file: Path | None, staging: Path | None, quick: bool, **local_checks: bool
    ) -> VerifyReport:
        key = crypto.load_key(key_file)
        return verify_at_target(self.store.objects, self.name, key, quick=quick, staging=staging)

    def restore(self, db_path: Path, *, key_file: Path | None, **options: Any) -> RestoreResult:
        key = crypto.load_key(key_file)
        return restore_from_target(self.store.objects, self.name, db_path, key, **options)

    @contextlib.contextmanager
    def local_copy(self, *, key_file: Path | None, staging: Path | None) -> Iterator[Path]:
        key = crypto.load_key(key_file)
        with fetched(self.store.objects, self.name, key, staging) as local:
            yield local

    def sign_legacy(self, key: bytes, staging: Path | None) -> list[str]:
        # Its sidecars at the target are replaced by tagged ones.
        return legacy.sign_legacy_at(self.store.objects, self.name, key, staging)


def stored_backup(location: str) -> StoredBackup:
    """The backup ``location`` names: a local path, or ``TARGET/NAME`` at a storage
    target (a location naming no backup inside a target is a ConfigError)."""
    if is_url(location):
        return TargetBackup(location, location)
    path = Path(location)
    if location.endswith(crypto.ENCRYPTED_SUFFIX) and path.is_file() and crypto.is_encrypted(path):
        return TargetBackup(location, f"file://{path.absolute()}")
    return LocalBackup(location, path)
