"""The odd ledger fixture is what the other tests rely on: unlike the sample, and gate-clean."""

from __future__ import annotations

from pathlib import Path

from _helpers import ODD_LEDGER_CONFIG, scalar

from dagvault.ledger import LedgerProfile
from dagvault.quality.ledger_checks import check_ledger


def test_odd_ledger_is_unlike_the_sample(odd_ledger: Path) -> None:
    assert scalar(odd_ledger, "PRAGMA page_size") == 8192
    assert scalar(odd_ledger, "PRAGMA journal_mode") == "wal"
    assert scalar(odd_ledger, "SELECT COUNT(*) FROM tx_log") == 200
    assert scalar(odd_ledger, "SELECT MIN(length(signature)) FROM tx_log") == 20_000
    assert scalar(odd_ledger, "SELECT MAX(value) FROM tx_log") > 2**62
    assert scalar(odd_ledger, "SELECT COUNT(*) FROM tx_log WHERE memo IS NULL") > 0
    assert (
        scalar(odd_ledger, "SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%WITHOUT ROWID'")
        == 2
    )
    assert scalar(odd_ledger, "SELECT COUNT(*) FROM sqlite_master WHERE type='trigger'") == 1


def test_odd_ledger_passes_the_ledger_gate_with_its_profile(odd_ledger: Path) -> None:
    profile = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])
    counts = {
        t: scalar(odd_ledger, f"SELECT COUNT(*) FROM {t}")
        for t in ("tx_log", "validators", "tx_edges")
    }
    report = check_ledger(
        odd_ledger,
        profile,
        snapshot_counts=counts,
        reports_dir=None,
        run_name="odd",
        suite_prefix="odd",
    )
    assert report.passed, report.problems()
    assert not report.warnings, report.warnings
    # Every ledger check ran (none skipped for a missing table or column).
    assert len(report.expectations) >= 8
