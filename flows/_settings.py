from __future__ import annotations

from typing import Any

from dagvault.config import Settings, load_settings
from dagvault.ledger import LedgerProfile


def resolve(config_file: str | None, **overrides: Any) -> Settings:
    return load_settings(overrides, config_file=config_file)


def ledger_profile(settings: Settings) -> LedgerProfile:
    return LedgerProfile(settings.transactions_table, settings.nodes_table)
