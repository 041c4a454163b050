"""The documented log events (docs/production.md), emitted by the core on logger ``dagvault``.

Operators grep for these lines; keep their wording stable.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from dagvault.errors import DagvaultError

log = logging.getLogger("dagvault")


def backup_created(path: object) -> None:
    log.info("📦 Database backup created: %s", path)


def pre_restore_backup_created(path: object) -> None:
    log.info("📦 Created pre-restore backup: %s", path)


def pre_restore_backup_reused(path: object) -> None:
    log.info("📦 Reusing pre-restore backup (the database is unchanged since): %s", path)


def restored(path: object) -> None:
    log.info("✅ Database restored from backup: %s", path)


def imported(database: object, dump: object) -> None:
    log.info("✅ Database %s imported from SQL dump: %s", database, dump)


def went_back(source: str, transactions: int, now: int) -> None:
    log.warning(
        "⚠️  Ledger went back %d transactions, restored from %s (%d now); the next backups "
        "compare with this state",
        transactions,
        source,
        now,
    )


def gate_failed_restored(path: object, verdict: str) -> None:
    log.warning("⚠️  Restoring a backup although %s: %s", verdict, path)


def integrity_failed(path: object, reason: str) -> None:
    log.warning("⚠️  Backup integrity check failed: %s: %s", path, reason)


def full_instead_of_delta(reason: str) -> None:
    log.warning("⚠️  Taking a full backup instead of a delta: %s", reason)


def backup_failed(reason: str) -> None:
    log.error("❌ Backup creation failed: %s", reason)


def backup_failure(exc: BaseException) -> None:
    """The ❌ line for ``exc``, once: the layer nearest the failure logs it and marks the
    exception, so the layers it passes through (core, flow, CLI) do not repeat it."""
    if getattr(exc, "backup_failure_logged", False) or not isinstance(exc, Exception):
        return  # a KeyboardInterrupt is no failure of the backup
    backup_failed(exc.message if isinstance(exc, DagvaultError) else f"{type(exc).__name__}: {exc}")
    with contextlib.suppress(AttributeError):  # (built-in exceptions take attributes too)
        exc.backup_failure_logged = True  # type: ignore[attr-defined]


@contextlib.contextmanager
def failing_backup() -> Iterator[None]:
    """Log ❌ Backup creation failed for whatever escapes the block (permission denied,
    disk full, a lock held, bad input, a failed verification or quality gate)."""
    try:
        yield
    except BaseException as exc:
        backup_failure(exc)
        raise


def restore_failed(reason: str) -> None:
    log.error("❌ Restore failed: %s", reason)


def cleaned(files: int, freed_bytes: int) -> None:
    log.info("🧹 Cleaned up %d old backup files, freed %d bytes", files, freed_bytes)
