"""Every failure dagvault reports: what happened, what to do, its exit code and HTTP status.

                                  exit HTTP
    DagvaultError                 1    500  unexpected failure
    ├── ConfigError               2    400  a setting or argument is invalid
    │   ├── EncryptionKeyError              no key, an unreadable key, or not the key a
    │   │                                   file was encrypted with
    │   └── PathRejected                    a request path malformed or outside its directory
    ├── SourceError               3    404  the database or backup named does not exist or
    │   ├── DatabaseNotFound                is not SQLite
    │   ├── NotASQLiteDatabase
    │   └── BackupNotFound
    ├── VerificationError         4    422  a backup failed verification; it must not be
    │   ├── EditedMetadata                  restored; a .meta edited after it was written
    │   ├── InvalidDump                     an SQL dump is malformed or truncated
    │   ├── ExportMismatch                  exported row counts differ from the snapshot
    │   ├── BackupsFailedVerification       the verify run's failure, with every report
    │   ├── DrillFailed                     a restore drill's point did not restore and check
    │   └── QualityGateFailed               the data failed a data-quality expectation
    │       └── BackupsFailedQualityGate    the verify run's gate failure, every report
    ├── BusyError                 5    409  retryable: the database or dagvault lock is held
    │   ├── OperationInProgress             another dagvault backup/restore/cleanup of it
    │   └── DatabaseLocked                  SQLite stayed busy past the timeout
    ├── StorageError              6    503  the filesystem refused (permission, I/O error)
    │   ├── DiskFull              6    507  no space left
    │   └── ReplicationIncomplete           some backups were not copied to a replica
    ├── RestoreError              7    500  the restore did not complete; the live
    │                                       database is unchanged
    ├── FleetBackupIncomplete     *    500  some ledgers of a fleet were not backed up
    │                                       (*: the exit code of the first failed one)
    ├── HandoffDeclined           2    409  the node service runs with other settings than
    │                                       the command's (the CLI then runs it itself)
    └── ServiceLost               9    503  the node service stopped while it ran the
                                            command's operation

``FAILURE_CODES`` is the one table of exit codes and HTTP statuses: the CLI and the HTTP
API both read it (``exit_code`` / ``http_status``).

Each message says what happened; ``hint`` says what to do next. ``retryable`` tells
the Prefect tasks whether another attempt can help (a lock, an I/O hiccup) or not
(corruption, bad input): retrying an integrity failure only hides it.
"""

from __future__ import annotations

import errno
from typing import Any, NamedTuple


class DagvaultError(Exception):
    retryable = False

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # A refusal an operator may overrule names its override in the words of the
        # interface showing it (dagvault.overrides): "cli", "api"; ``hint`` is the
        # flow's (Prefect runs, deployments, the core API).
        self.hints: dict[str, str] = {}

    @property
    def exit_code(self) -> int:
        """The CLI's exit code (FAILURE_CODES)."""
        return _codes(self).exit_code

    def hint_for(self, interface: str) -> str:
        return self.hints.get(interface, self.hint)

    def __str__(self) -> str:
        # Prefect shows str(exc) as a failed run's message (UI, notifications): there an
        # overridable refusal names its override too.
        return f"{self.message}. Try: {self.hint}" if self.hints else self.message


class ConfigError(DagvaultError):
    pass


class EncryptionKeyError(ConfigError):
    pass


class PathRejected(ConfigError):
    """A request path that is malformed or leaves its directory (HTTP 400)."""

    def __init__(self, field: str, message: str, hint: str) -> None:
        super().__init__(f"{field}: {message}", hint)
        self.field = field


class SourceError(DagvaultError):
    pass


class DatabaseNotFound(SourceError):
    pass


class NotASQLiteDatabase(SourceError):
    pass


class BackupNotFound(SourceError):
    pass


class VerificationError(DagvaultError):
    def __init__(self, message: str, hint: str = "", *, problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or [message]


class EditedMetadata(VerificationError):
    """A sidecar whose fields are all well-formed but whose meta_checksum does not match:
    ``document`` holds them, for ``dagvault.meta_fields`` to find the edited one."""

    def __init__(self, message: str, hint: str, *, document: dict[str, Any]) -> None:
        super().__init__(message, hint)
        self.document = document


class DamagedCompressedData(VerificationError):
    """zstd could not decompress a backup: ``read_as`` is the SHA3-256 of the whole file as
    read, so that the caller names a checksum mismatch (the file is not what was written)
    rather than zstd's symptom of it."""

    def __init__(self, message: str, hint: str, *, read_as: str) -> None:
        super().__init__(message, hint)
        self.read_as = read_as


class InvalidDump(VerificationError):
    pass


class ExportMismatch(VerificationError):
    pass


class QualityGateFailed(VerificationError):
    """The data broke a data-quality expectation (duplicate hash, dangling parent, lost rows…).

    The backup or export stays on disk; a backup is marked failed so that nothing trusts it."""


class BackupsFailedVerification(VerificationError):
    """The verify flow's failure, with every backup's report (the CLI prints them all)."""

    def __init__(
        self, message: str, hint: str, *, problems: list[str], reports: list[dict[str, Any]]
    ) -> None:
        super().__init__(message, hint, problems=problems)
        self.reports = reports


class BackupsFailedQualityGate(QualityGateFailed):
    """Intact backups whose data failed the quality gate, with every backup's report."""

    def __init__(
        self, message: str, hint: str, *, problems: list[str], reports: list[dict[str, Any]]
    ) -> None:
        super().__init__(message, hint, problems=problems)
        self.reports = reports


class DrillFailed(VerificationError):
    """A restore drill failed: a point did not restore, or its restored file failed a check;
    ``document`` is the drill's whole result (the CLI and the run print it)."""

    def __init__(self, message: str, hint: str, *, document: dict[str, Any]) -> None:
        super().__init__(message, hint)
        self.document = document


class BusyError(DagvaultError):
    retryable = True


class OperationInProgress(BusyError):
    pass


class DatabaseLocked(BusyError):
    pass


class StorageError(DagvaultError):
    pass


class DiskFull(StorageError):
    pass


class ReplicationIncomplete(StorageError):
    """Some backups could not be copied; the run fails so that it shows, with the reports."""

    def __init__(self, message: str, hint: str, reports: list[dict[str, Any]]) -> None:
        super().__init__(message, hint)
        self.reports = reports


class RestoreError(DagvaultError):
    pass


class FleetBackupIncomplete(DagvaultError):
    """Some ledgers of the fleet were not backed up; ``reports`` holds every ledger's
    outcome. The exit code is that of the first failed ledger."""

    def __init__(self, message: str, hint: str, *, reports: list[dict[str, Any]]) -> None:
        super().__init__(message, hint)
        self.reports = reports

    @property
    def exit_code(self) -> int:
        return next(int(r["exit_code"]) for r in self.reports if r["status"] == "failed")


class HandoffDeclined(DagvaultError):
    """The node service (``dagvault up``) will not run a command's operation: it runs with
    other settings. Never shown: the CLI runs the operation itself instead."""


class ServiceLost(DagvaultError):
    """The node service stopped (was killed, crashed) while it ran the command's operation;
    its guarantees hold as for a killed command: nothing half-written looks valid."""


class Codes(NamedTuple):
    exit_code: int
    http_status: int


# The exit code and HTTP status of each failure class; a class not listed takes those of
# its nearest listed ancestor. 422: the request was understood, the backup or data is bad.
FAILURE_CODES: dict[type[DagvaultError], Codes] = {
    DagvaultError: Codes(1, 500),
    ConfigError: Codes(2, 400),
    SourceError: Codes(3, 404),
    VerificationError: Codes(4, 422),
    BusyError: Codes(5, 409),
    StorageError: Codes(6, 503),
    DiskFull: Codes(6, 507),
    RestoreError: Codes(7, 500),
    HandoffDeclined: Codes(2, 409),
    ServiceLost: Codes(9, 503),
}
HTTP_STATUSES = sorted({codes.http_status for codes in FAILURE_CODES.values()})


def _codes(exc: DagvaultError) -> Codes:
    return next(FAILURE_CODES[cls] for cls in type(exc).__mro__ if cls in FAILURE_CODES)


def http_status(exc: DagvaultError) -> int:
    """The HTTP API's status for ``exc`` (FAILURE_CODES)."""
    return _codes(exc).http_status


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
    9: "the node service (`dagvault up`) stopped while it ran the command; run it again",
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
