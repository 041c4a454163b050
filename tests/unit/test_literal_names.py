"""File names are taken literally by every layer: the quality gates check the file that was
written, not the one a URL decoder makes of its name (issue #20)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _helpers import ODD_LEDGER_CONFIG, make_odd_ledger, scalar

from dagvault.export import export_database
from dagvault.ledger import LedgerProfile
from dagvault.quality import check_export, count_exported
from dagvault.quality.ledger_checks import check_ledger

TABLES = ("tx_log", "validators", "tx_edges")


def test_the_ledger_gate_reads_a_percent_named_directory_literally(
    odd_ledger: Path, tmp_path: Path
) -> None:
    """``a/%2e%2e/b/ledger.db`` decoded is ``b/ledger.db``: a decoy with other counts lies
    there, so a gate that decodes the name fails the row counts (or finds no file)."""
    literal = tmp_path / "a" / "%2e%2e" / "b" / "ledger.db"
    literal.parent.mkdir(parents=True)
    shutil.copy(odd_ledger, literal)
    (tmp_path / "b").mkdir()
    make_odd_ledger(tmp_path / "b" / "ledger.db", transactions=20)
    counts = {t: scalar(literal, f"SELECT COUNT(*) FROM {t}") for t in TABLES}
    report = check_ledger(
        literal,
        LedgerProfile(**ODD_LEDGER_CONFIG["ledger"]),
        snapshot_counts=counts,
        reports_dir=tmp_path / "reports",
        run_name=literal.name,
        suite_prefix="odd",
    )
    assert report.passed, report.problems()


def test_the_export_gate_accepts_a_backslash_in_the_name(odd_ledger: Path, tmp_path: Path) -> None:
    """GX's stores refuse '\\' in a run name: the gate used to crash after the export."""
    result = export_database("csv", database=odd_ledger, out=tmp_path / "exp\\orts")
    report = check_export(Path(result.export_path), result.row_counts, reports_dir=tmp_path / "r")
    assert report.passed, report.problems()


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_an_export_named_like_a_glob_is_counted_from_its_own_files(
    odd_ledger: Path, tmp_path: Path, fmt: str
) -> None:
    """DuckDB reads ``ex[1]/tx_log.csv`` as a glob matching ``ex1/tx_log.csv``: a decoy with
    other counts lies there, so an unescaped read-back or gate counts the wrong rows."""
    small = make_odd_ledger(tmp_path / "small.db", transactions=20)
    export_database(fmt, database=small, out=tmp_path / "ex1")
    result = export_database(fmt, database=odd_ledger, out=tmp_path / "ex[1]")
    assert result.row_counts["tx_log"] == 200
    assert count_exported(Path(result.export_path)) == result.row_counts
    report = check_export(Path(result.export_path), result.row_counts, reports_dir=None)
    assert report.passed, report.problems()
