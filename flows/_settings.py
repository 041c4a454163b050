from __future__ import annotations

from typing import Any

from dagvault.config import Settings, load_settings
from dagvault.ledger import LedgerProfile


def resolve(config_file: str | None, **overrides: Any) -> Settings:
    return load_settings(overrides, config_file=config_file)


def ledger_profile(settings: Settings) -> LedgerProfile:
    return LedgerProfile(
        transactions_table=settings.transactions_table,
        nodes_table=settings.nodes_table,
        parents_table=settings.parents_table,
        parent_child_column=settings.parent_child_column,
        parent_parent_column=settings.parent_parent_column,
        id_column=settings.id_column,
        hash_column=settings.hash_column,
        amount_column=settings.amount_column,
        fee_column=settings.fee_column,
        timestamp_column=settings.timestamp_column,
    )
