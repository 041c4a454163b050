"""The ledger's expectations, evaluated by GX with SQL inside the SQLite file.

Generic (any database): every table's row count equals the count taken at snapshot
time. Ledger (where the profile's tables and columns exist): total transactions never
below the previous backup's, hashes non-null and unique, amounts and fees non-negative,
timestamps plausible, every DAG edge resolves to existing transactions, no
transaction approves itself. A missing table or column skips its checks with a warning.

Every check is an aggregate query (COUNT, a GROUP BY on the hash, a LEFT JOIN): SQLite
streams the table, so a 10M-row ledger validates in bounded memory.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from dagvault.db import open_database, quote_identifier, table_names
from dagvault.ledger import LedgerProfile
from dagvault.quality.gx_runner import Asset, Expect, run_on_sqlite
from dagvault.quality.report import Outcome, QualityReport

GENESIS_2009 = 1_231_006_805  # Bitcoin's genesis block: no ledger predates it
DAY = 86_400
_EXAMPLES = 3  # example rows quoted in a failed DAG check


@dataclass(frozen=True)
class Previous:
    """The floor for total transactions: the previous backup of the same database, or a
    restore/import of it since."""

    name: str
    total_transactions: int
    created_at: str = ""
    describe: str = ""  # default: "previous backup <name> had <total>"

    def __str__(self) -> str:
        return self.describe or f"previous backup {self.name} had {self.total_transactions}"


@dataclass(frozen=True)
class Limits:
    min_timestamp: int = GENESIS_2009
    max_future_seconds: int = DAY


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    rows = conn.execute(f"PRAGMA table_info({quote_identifier(table)})")
    return {row[1] for row in rows}


def _dag_queries(p: LedgerProfile) -> dict[str, str]:
    edges, tx = quote_identifier(p.parents_table), quote_identifier(p.transactions_table)
    child, parent = (
        quote_identifier(p.parent_child_column),
        quote_identifier(p.parent_parent_column),
    )
    ident = quote_identifier(p.id_column)
    return {
        "dag_references_resolve": (
            f"SELECT e.{child} AS child, e.{parent} AS parent FROM {edges} AS e "
            f"LEFT JOIN {tx} AS c ON c.{ident} = e.{child} "
            f"LEFT JOIN {tx} AS p ON p.{ident} = e.{parent} "
            f"WHERE c.{ident} IS NULL OR p.{ident} IS NULL"
        ),
        "no_self_approval": (
            f"SELECT {child} AS child, {parent} AS parent FROM {edges} WHERE {child} = {parent}"
        ),
    }


_DAG_TEXT = {
    "dag_references_resolve": "DAG edges whose child or parent is not an existing transaction",
    "no_self_approval": "transactions that approve themselves",
}


def plan(
    conn: sqlite3.Connection,
    profile: LedgerProfile,
    *,
    snapshot_counts: dict[str, int],
    previous: Previous | None,
    allow_decrease: bool,
    limits: Limits,
) -> tuple[list[Asset], list[Outcome], list[str]]:
    """The assets to validate, outcomes decided without GX (a table gone), and warnings."""
    tables = set(table_names(conn))
    by_table: dict[str, list[Expect]] = {}
    decided: list[Outcome] = []
    warnings: list[str] = []
    for table, count in sorted(snapshot_counts.items()):
        if table not in tables:
            decided.append(
                Outcome(
                    "row_count_matches_snapshot",
                    "ExpectTableRowCountToEqual",
                    table,
                    None,
                    False,
                    "table missing",
                    f"the snapshot had {count} rows",
                )
            )
            continue
        by_table[table] = [
            Expect(
                "row_count_matches_snapshot",
                "ExpectTableRowCountToEqual",
                {"value": count},
                table,
                describe=f"snapshot had {count}",
            )
        ]
    if profile.transactions_table not in tables:
        warnings.append(
            f"ledger table {profile.transactions_table!r} not found: the ledger checks were "
            "skipped, only the generic row-count checks ran (set ledger.transactions_table)"
        )
    if profile.nodes_table not in tables:
        warnings.append(f"ledger table {profile.nodes_table!r} not found (set ledger.nodes_table)")
    assets: list[Asset] = []
    tx = profile.transactions_table
    if tx in tables:
        by_table.setdefault(tx, [])
        by_table[tx] += _transaction_checks(
            _columns(conn, tx), profile, previous, allow_decrease, limits, snapshot_counts, warnings
        )
        assets += _dag_assets(conn, tables, profile, warnings)
    table_assets = [Asset(f"table {t}", e, table=t) for t, e in by_table.items() if e]
    return table_assets + assets, decided, warnings


def _transaction_checks(
    columns: set[str],
    p: LedgerProfile,
    previous: Previous | None,
    allow_decrease: bool,
    limits: Limits,
    snapshot_counts: dict[str, int],
    warnings: list[str],
) -> list[Expect]:
    tx = p.transactions_table
    checks: list[Expect] = []
    if previous is not None:
        current = snapshot_counts.get(tx)
        if not allow_decrease:
            checks.append(
                Expect(
                    "transactions_not_decreased",
                    "ExpectTableRowCountToBeBetween",
                    {"min_value": previous.total_transactions},
                    tx,
                    describe=str(previous),
                )
            )
        elif current is not None and current < previous.total_transactions:
            warnings.append(
                f"total transactions decreased from {previous.total_transactions} "
                f"({previous.name}) to {current}; allowed by --allow-decrease"
            )
    wanted = {
        p.hash_column: [
            ("hash_not_null", "ExpectColumnValuesToNotBeNull", {}),
            ("hash_unique", "ExpectColumnValuesToBeUnique", {}),
        ],
        p.amount_column: [
            ("amount_non_negative", "ExpectColumnValuesToBeBetween", {"min_value": 0})
        ],
        p.fee_column: [("fee_non_negative", "ExpectColumnValuesToBeBetween", {"min_value": 0})],
        p.timestamp_column: [
            (
                "timestamp_plausible",
                "ExpectColumnValuesToBeBetween",
                {
                    "min_value": limits.min_timestamp,
                    "max_value": int(time.time()) + limits.max_future_seconds,
                },
            )
        ],
    }
    for column, specs in wanted.items():
        if column not in columns:
            warnings.append(
                f"column {tx}.{column} not found: its checks ({', '.join(s[0] for s in specs)}) "
                "were skipped (set the ledger.*_column settings)"
            )
            continue
        for check, gx_type, kwargs in specs:
            describe = ""
            if check == "timestamp_plausible":
                describe = f"allowed {_iso(kwargs['min_value'])} .. {_iso(kwargs['max_value'])}"
            checks.append(
                Expect(check, gx_type, {"column": column, **kwargs}, tx, column, describe)
            )
    return checks


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def _dag_assets(
    conn: sqlite3.Connection, tables: set[str], p: LedgerProfile, warnings: list[str]
) -> list[Asset]:
    needed = {
        p.parents_table: {p.parent_child_column, p.parent_parent_column},
        p.transactions_table: {p.id_column},
    }
    missing = []
    for table, columns in needed.items():
        if table not in tables:
            missing.append(f"table {table!r}")
        else:
            missing += [f"column {table}.{c}" for c in sorted(columns - _columns(conn, table))]
    if missing:
        warnings.append(
            f"DAG checks skipped: {', '.join(missing)} not found (set ledger.parents_table "
            "and the ledger.*_column settings)"
        )
        return []
    return [
        Asset(
            name,
            [
                Expect(
                    name,
                    "ExpectTableRowCountToEqual",
                    {"value": 0},
                    p.parents_table,
                    describe=_DAG_TEXT[name],
                )
            ],
            query=query,
        )
        for name, query in _dag_queries(p).items()
    ]


def _with_examples(
    conn: sqlite3.Connection, outcomes: list[Outcome], profile: LedgerProfile
) -> list[Outcome]:
    """A failed DAG check quotes a few offending edges: an operator's first question."""
    queries = _dag_queries(profile)
    result = []
    for o in outcomes:
        if not o.success and o.name in queries and o.observed_value:
            rows = conn.execute(f"{queries[o.name]} LIMIT {_EXAMPLES}").fetchall()
            edges = ", ".join(f"{child} -> {parent}" for child, parent in rows)
            o = replace(o, details=f"{o.details}; e.g. child -> parent: {edges}")
        result.append(o)
    return result


def check_ledger(
    database: Path,
    profile: LedgerProfile,
    *,
    snapshot_counts: dict[str, int],
    reports_dir: Path | None,
    run_name: str,
    suite_prefix: str,
    previous: Previous | None = None,
    allow_decrease: bool = False,
    limits: Limits | None = None,
    subject: str | None = None,
) -> QualityReport:
    """Run the ledger's expectations on the SQLite file ``database`` (opened read-only)."""
    conn = open_database(database, mode="ro", what="backup")
    try:
        assets, decided, warnings = plan(
            conn,
            profile,
            snapshot_counts=snapshot_counts,
            previous=previous,
            allow_decrease=allow_decrease,
            limits=limits or Limits(),
        )
        outcomes, index = run_on_sqlite(
            database, assets, suite_prefix=suite_prefix, run_name=run_name, reports_dir=reports_dir
        )
        outcomes = decided + _with_examples(conn, outcomes, profile)
    finally:
        conn.close()
    return QualityReport(
        subject=subject or str(database),
        passed=all(o.success for o in outcomes),
        expectations=outcomes,
        warnings=warnings,
        data_docs_index=index,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
