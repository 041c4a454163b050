"""Shared by the unit and the integration half of test_quality.py."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import duckdb

from dagvault.quality import QualityReport

ALL_CHECKS = {
    "row_count_matches_snapshot",
    "hash_not_null",
    "hash_unique",
    "amount_non_negative",
    "fee_non_negative",
    "timestamp_plausible",
    "dag_references_resolve",
    "no_self_approval",
}


def run_sql(path: Path, *statements: str) -> None:
    """Change a ledger with a plain connection: no foreign keys, like a buggy node."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def failed(report: QualityReport) -> set[str]:
    return {o.name for o in report.failures}


# --------------------------------------------------------------------------- export gate


def tamper_parquet(file: Path, keep: int) -> None:
    """Rewrite a Parquet file with only its first ``keep`` rows (a truncated copy)."""
    tmp = file.with_name("tampered.parquet")
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{file}') LIMIT {keep}) TO '{tmp}' (FORMAT parquet)"
        )
    finally:
        con.close()
    tmp.replace(file)
