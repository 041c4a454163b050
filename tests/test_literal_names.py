"""File names are taken literally by every layer: the quality gates check the file that was
written, not the one a URL decoder makes of its name (issue #20)."""

from __future__ import annotations

import shutil
from pathlib import Path

from _helpers import ODD_LEDGER_CONFIG, make_odd_ledger, scalar

from dagvault.export import export_database
from dagvault.ledger import LedgerProfile
from dagvault.quality import check_export
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
