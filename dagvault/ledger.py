"""The ledger profile: which tables hold transactions and nodes.

The engine backs up any SQLite database; these names only feed the description's
``total_transactions`` / ``total_nodes`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerProfile:
    transactions_table: str = "transactions"
    nodes_table: str = "nodes"

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
