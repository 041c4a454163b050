"""Every failure dagvault reports: what happened, what to do, and the exit code.

    DagvaultError                 1  unexpected failure
    ├── ConfigError               2  a setting or argument is invalid
    │   └── EncryptionKeyError         no key, an unreadable key, or not the key a file was
    │                                  encrypted with
    ├── SourceError               3  the database or backup named does not exist or is not SQLite
    │   ├── DatabaseNotFound
    │   ├── NotASQLiteDatabase
    │   └── BackupNotFound
    ├── VerificationError         4  a backup failed verification; it must not be restored
    │   ├── InvalidDump                an SQL dump is malformed or truncated
    │   ├── ExportMismatch             exported row counts differ from the snapshot
    │   └── QualityGateFailed          the data failed a data-quality expectation
    ├── BusyError                 5  retryable: the database or dagvault lock is held
    │   ├── OperationInProgress       another dagvault backup/restore/cleanup of this database
    │   └── DatabaseLocked            SQLite stayed busy past the timeout
    ├── StorageError              6  the filesystem refused (no space, permission, I/O error)
    │   └── DiskFull
    └── RestoreError              7  the restore did not complete; the live database is unchanged

Each message says what happened; ``hint`` says what to do next. ``retryable`` tells
the Prefect tasks whether another attempt can help (a lock, an I/O hiccup) or not
(corruption, bad input): retrying an integrity failure only hides it.
"""

from __future__ import annotations

import errno


class DagvaultError(Exception):
    exit_code = 1
    retryable = False

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # A refusal an operator may overrule names its override in the words of the
        # interface showing it (dagvault.overrides): "cli", "api"; ``hint`` is the
        # flow's (Prefect runs, deployments, the core API).
        self.hints: dict[str, str] = {}

    def hint_for(self, interface: str) -> str:
        return self.hints.get(interface, self.hint)

    def __str__(self) -> str:
        # Prefect shows str(exc) as a failed run's message (UI, notifications): there an
        # overridable refusal names its override too.
        return f"{self.message}. Try: {self.hint}" if self.hints else self.message


class ConfigError(DagvaultError):
    exit_code = 2


class EncryptionKeyError(ConfigError):
    pass


class SourceError(DagvaultError):
    exit_code = 3


class DatabaseNotFound(SourceError):
    pass


class NotASQLiteDatabase(SourceError):
    pass


class BackupNotFound(SourceError):
    pass


class VerificationError(DagvaultError):
    exit_code = 4

    def __init__(self, message: str, hint: str = "", *, problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or [message]


class InvalidDump(VerificationError):
    pass


class ExportMismatch(VerificationError):
    pass


class QualityGateFailed(VerificationError):
    """The data broke a data-quality expectation (duplicate hash, dangling parent, lost rows…).

    The backup or export stays on disk; a backup is marked failed so that nothing trusts it."""


class BusyError(DagvaultError):
    exit_code = 5
    retryable = True


class OperationInProgress(BusyError):
    pass


class DatabaseLocked(BusyError):
    pass


class StorageError(DagvaultError):
    exit_code = 6


class DiskFull(StorageError):
    pass


class RestoreError(DagvaultError):
    exit_code = 7


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected failure (a bug: please report it with the log)",
    2: "invalid setting or argument",
    3: "database or backup not found, or not a SQLite file",
    4: "backup failed verification (checksum, metadata, integrity, row counts, data quality)",
    5: "busy: another dagvault operation or a writer holds the database; retry later",
    6: "storage error: no space, permission denied or I/O error",
    7: "restore failed; the live database was left unchanged",
    8: "`dagvault health`: degraded (the warnings say why)",
}

# EIO and friends can be a passing fault of the device or the network filesystem.
_TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.EBUSY}


def storage_error(exc: OSError, action: str, path: str) -> StorageError:
    """Translate an OSError raised while doing ``action`` on ``path`` into a StorageError."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFull(
            f"No space left while {action} {path}: {reason}",
            "Free up disk space (dagvault cleanup --keep N removes old backups) or point "
            "BACKUP_DIR at a larger volume, then run the command again.",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(
            f"Permission denied while {action} {path}: {reason}",
            "Check the permissions of that path (the backup directory must be writable by "
            "this user), or choose another directory with --backup-dir / BACKUP_DIR.",
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return StorageError(
            f"Path problem while {action} {path}: {reason}",
            "A directory in that path is a regular file, or a file is a directory; "
            "choose another path (--backup-dir / BACKUP_DIR, --out).",
        )
    err = StorageError(
        f"I/O error while {action} {path}: {reason}",
        "Check the device and its free space; run the command again.",
    )
    err.retryable = exc.errno in _TRANSIENT_ERRNOS
    return err
