"""The log events of the system description, emitted by the core on logger ``dagvault``.

Operators grep for these lines; keep their wording stable.
"""

from __future__ import annotations

import logging

log = logging.getLogger("dagvault")


def backup_created(path: object) -> None:
    log.info("📦 Database backup created: %s", path)


def pre_restore_backup_created(path: object) -> None:
    log.info("📦 Created pre-restore backup: %s", path)


def pre_restore_backup_reused(path: object) -> None:
    log.info("📦 Reusing pre-restore backup (the database is unchanged since): %s", path)


def restored(path: object) -> None:
    log.info("✅ Database restored from backup: %s", path)


def integrity_failed(path: object, reason: str) -> None:
    log.warning("⚠️  Backup integrity check failed: %s: %s", path, reason)


def full_instead_of_delta(reason: str) -> None:
    log.warning("⚠️  Taking a full backup instead of a delta: %s", reason)


def backup_failed(reason: str) -> None:
    log.error("❌ Backup creation failed: %s", reason)


def restore_failed(reason: str) -> None:
    log.error("❌ Restore failed: %s", reason)


def cleaned(files: int, freed_bytes: int) -> None:
    log.info("🧹 Cleaned up %d old backup files, freed %d bytes", files, freed_bytes)
