"""The gate costs what its data costs: a check that finds nothing issues no query for
example values (on a large ledger each such query scanned the table once more for
nothing); a check that finds bad values still quotes them, once, in its result and in the
stored validation result behind the Data Docs."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from dagvault.backup import create_backup
from dagvault.ledger import LedgerProfile
from dagvault.quality import gate_backup
from dagvault.quality.report import QualityReport

pytestmark = pytest.mark.filterwarnings(
    "ignore:Logger 'dagvault' attempted to send logs:UserWarning"
)


@contextmanager
def example_limits() -> Iterator[list[Any]]:
    """The LIMIT of every query GX sends for a check's unexpected values."""
    limits: list[Any] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "AS unexpected_values" in statement:
            limits.append(params[-2])  # "... LIMIT ? OFFSET ?"

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield limits
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


def gate(ledger: Path, tmp_path: Path, reports: Path | None = None) -> QualityReport:
    info = create_backup(ledger, tmp_path / "backups")
    return gate_backup(Path(info.backup_path), LedgerProfile(), reports_dir=reports)


def test_a_passing_gate_fetches_no_example_values(ledger: Path, tmp_path: Path) -> None:
    with example_limits() as limits:
        report = gate(ledger, tmp_path)

    assert report.passed, report.problems()
    assert limits and set(limits) == {0}  # SQLite stops a LIMIT 0 query before any row
    assert gc.get_freeze_count() > 0  # GX's import was moved out of the collector's way


def test_a_failing_check_still_quotes_its_values_once(ledger: Path, tmp_path: Path) -> None:
    with sqlite3.connect(ledger) as conn:
        conn.execute("PRAGMA ignore_check_constraints=ON")
        conn.execute("UPDATE transactions SET amount = -7 WHERE id IN (3, 4)")
    conn.close()
    reports = tmp_path / "reports"

    with example_limits() as limits:
        report = gate(ledger, tmp_path, reports)

    (failed,) = report.failures
    assert failed.name == "amount_non_negative" and failed.observed_value == 2
    assert "e.g. [-7, -7]" in failed.details
    assert 5 in limits  # the failing suite ran again, with examples
    # One stored result per suite: the first pass's result of the failing suite is replaced.
    stored = sorted(p.parent.parent.parent.name for p in (reports / "validations").rglob("*.json"))
    assert len(stored) == len(set(stored)), stored
    assert report.data_docs_index and Path(report.data_docs_index).is_file()
