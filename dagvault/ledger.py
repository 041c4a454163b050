"""The ledger profile: which tables and columns hold transactions, DAG parents and nodes.

The engine backs up any SQLite database; these names only feed BackupInfo's
``total_transactions`` / ``total_nodes`` fields and the data-quality gates (a database
without them gets the generic checks and a warning).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerProfile:
    transactions_table: str = "transactions"
    nodes_table: str = "nodes"
    # The DAG: one row per approval, child approves parent; both reference id_column.
    parents_table: str = "transaction_parents"
    parent_child_column: str = "child_id"
    parent_parent_column: str = "parent_id"
    id_column: str = "id"
    hash_column: str = "tx_hash"
    amount_column: str = "amount"
    fee_column: str = "fee"
    timestamp_column: str = "timestamp"

    def totals(self, row_counts: dict[str, int]) -> tuple[int, int, list[str]]:
        """(total_transactions, total_nodes, warnings) from per-table row counts."""
        warnings = []
        for table in (self.transactions_table, self.nodes_table):
            if table not in row_counts:
                warnings.append(
                    f"ledger table {table!r} not found; its total is recorded as 0 "
                    "(set ledger.transactions_table / ledger.nodes_table in the config file)"
                )
        return (
            row_counts.get(self.transactions_table, 0),
            row_counts.get(self.nodes_table, 0),
            warnings,
        )
