from __future__ import annotations

from dataclasses import fields
from typing import Any

from dagvault.config import Settings, load_settings
from dagvault.ledger import LedgerProfile
from dagvault.storage.backup_store import backup_store


def resolve(settings: Settings | None, config_file: str | None, **parameters: Any) -> Settings:
    """A flow run's settings: those its entry point resolved and handed down (a command, the
    API server, a parent flow), or, for a deployment's run, resolved here from the config
    file and the environment; the run's own parameters (flags, request fields) on top."""
    return load_settings(parameters, config_file=config_file, base=settings)


def ledger_profile(settings: Settings) -> LedgerProfile:
    """Every LedgerProfile field is a setting of the same name (the ``ledger`` section)."""
    return LedgerProfile(**{f.name: getattr(settings, f.name) for f in fields(LedgerProfile)})


def key_file(settings: Settings) -> str | None:
    """The key file's path as a task parameter (the key itself never is one)."""
    return str(settings.encryption_key_file) if settings.encryption_key_file else None


def staging_dir(settings: Settings) -> str | None:
    return str(settings.staging_dir) if settings.staging_dir else None


def journal_dir(settings: Settings) -> str | None:
    """Where exports and imports are journaled: a local BACKUP_DIR (see dagvault.journal)."""
    local = backup_store(settings.backup_dir).local_path
    return None if local is None else str(local)
