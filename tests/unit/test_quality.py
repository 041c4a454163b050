"""Data-quality gates (GX) on real SQLite backups and real exported files.

Each expectation fails on a ledger broken in exactly one way and passes on the sample
ledger. The Prefect flows run against the session's test server; the CLI in a
subprocess. GX takes seconds to import: it is imported once, by the first gate.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_quality.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _helpers import hidden_leftovers, make_database, read_meta_json, write_meta_json
from _shared.quality import ALL_CHECKS, failed, run_sql, tamper_parquet

from dagvault.backup import create_backup
from dagvault.catalog import list_backups
from dagvault.config import load_settings
from dagvault.errors import ConfigError, StorageError, VerificationError
from dagvault.export import export_database
from dagvault.journal import journal_path
from dagvault.ledger import LedgerProfile
from dagvault.meta import read_meta
from dagvault.quality import (
    Outcome,
    QualityReport,
    check_export,
    check_ledger,
    count_exported,
    gate_backup,
    previous_backup,
)
from dagvault.quality.backup_gate import GateOptions
from dagvault.verify import verify_backup
from flows._settings import ledger_profile

# Backups taken with the core outside a flow run: Prefect's API log handler (bridged onto
# the "dagvault" logger by tasks._runtime) has no run to send their log lines to.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Logger 'dagvault' attempted to send logs:UserWarning"
)
PROFILE = LedgerProfile()


def relax(path: Path) -> None:
    """Rebuild transactions without its UNIQUE/CHECK constraints so bad rows can exist."""
    run_sql(
        path,
        "DROP VIEW ledger_daily",
        "DROP TRIGGER trg_transactions_validator_last_seen",
        "CREATE TABLE loose AS SELECT * FROM transactions",
        "DROP TABLE transactions",
        "ALTER TABLE loose RENAME TO transactions",
    )


def gate(
    ledger: Path,
    tmp_path: Path,
    reports: Path | None = None,
    *,
    written: bool = False,
    **kwargs: Any,
) -> tuple[Path, QualityReport]:
    """Back up ``ledger`` and gate it; Data Docs (slow HTML) only where a test reads them.
    ``written``: gated while it is written (a flow's plain full backup), not afterwards."""
    if not written:
        info = create_backup(ledger, tmp_path / "backups")
        path = Path(info.backup_path)
        return path, gate_backup(path, PROFILE, reports_dir=reports, **kwargs)
    options = GateOptions(PROFILE, reports, **kwargs)
    info = create_backup(ledger, tmp_path / "backups", verify=True, gate=options)
    path = Path(info.backup_path)
    assert info.quality is not None and read_meta(path).quality == info.quality
    record = info.quality
    return path, QualityReport(
        subject=str(path),
        passed=record["passed"],
        expectations=[Outcome(**e) for e in record["expectations"]],
        warnings=record["warnings"],
        data_docs_index=record["data_docs"],
        checked_at=record["checked_at"],
    )


# Each backup gate check holds whether the gate runs on the published backup or on the
# image while it is hashed (a plain full backup of a flow).
WHEN = pytest.mark.parametrize("written", [False, True], ids=["after", "while-written"])


def outcome(report: QualityReport, name: str, table: str = "transactions") -> Any:
    (found,) = [o for o in report.expectations if o.name == name and o.table == table]
    return found


# --------------------------------------------------------------------------- backup gate


@WHEN
def test_the_sample_ledger_passes_every_expectation_and_data_docs_are_written(
    ledger: Path, tmp_path: Path, written: bool
) -> None:
    path, report = gate(ledger, tmp_path, tmp_path / "reports", written=written)
    assert report.passed, report.problems()
    assert {o.name for o in report.expectations} == ALL_CHECKS
    assert report.warnings == []
    assert outcome(report, "row_count_matches_snapshot").observed_value == 300
    assert outcome(report, "hash_unique").observed_value == 0
    assert report.data_docs_index == str(tmp_path / "reports" / "data_docs" / "index.html")
    index = Path(report.data_docs_index)
    assert index.is_file() and "<html" in index.read_text().lower()
    # One page per suite of the run (one Data Docs build for all of them), and the index
    # lists them; a second run adds its own pages and keeps the first run's.
    first_pages = sorted((index.parent / "validations").rglob("*.html"))
    suites = {page.relative_to(index.parent / "validations").parts[1] for page in first_pages}
    assert len(suites) >= 4, suites
    _, second = gate(ledger, tmp_path / "second", tmp_path / "reports", written=written)
    assert second.passed, second.problems()
    pages = sorted((index.parent / "validations").rglob("*.html"))
    assert set(first_pages) < set(pages) and len(pages) == 2 * len(first_pages)
    listed = index.read_text()
    assert all(quote(str(page.relative_to(index.parent))) in listed for page in pages)
    quality = read_meta(path).quality
    assert quality is not None and quality["passed"] is True
    assert quality["data_docs"] == report.data_docs_index
    # The gate does not verify; a backup gated while written was verified meanwhile.
    assert read_meta(path).verification.status == ("verified" if written else "unverified")


NOW = int(time.time())
BROKEN: dict[str, tuple[bool, tuple[str, ...], str]] = {
    # case: (needs relaxed constraints, statements, the one check that must fail)
    "duplicate hash": (
        True,
        (
            "UPDATE transactions SET tx_hash = (SELECT tx_hash FROM transactions WHERE id = 1) "
            "WHERE id = 2",
        ),
        "hash_unique",
    ),
    "null hash": (True, ("UPDATE transactions SET tx_hash = NULL WHERE id = 5",), "hash_not_null"),
    "negative amount": (
        True,
        ("UPDATE transactions SET amount = -1 WHERE id = 7",),
        "amount_non_negative",
    ),
    "negative fee": (True, ("UPDATE transactions SET fee = -5 WHERE id = 8",), "fee_non_negative"),
    "timestamp before 2009": (
        False,
        ("UPDATE transactions SET timestamp = 1000000000 WHERE id = 9",),
        "timestamp_plausible",
    ),
    "timestamp in the future": (
        False,
        (f"UPDATE transactions SET timestamp = {NOW + 10 * 86_400} WHERE id = 9",),
        "timestamp_plausible",
    ),
    "dangling parent": (
        False,
        ("INSERT INTO transaction_parents VALUES (10, 999999)",),
        "dag_references_resolve",
    ),
    "self-approval": (
        False,
        ("INSERT INTO transaction_parents VALUES (11, 11)",),
        "no_self_approval",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
@WHEN
def test_each_expectation_fails_on_a_ledger_broken_that_way(
    ledger: Path, tmp_path: Path, case: str, written: bool
) -> None:
    needs_relax, statements, check = BROKEN[case]
    if needs_relax:
        relax(ledger)
    run_sql(ledger, *statements)
    _, report = gate(ledger, tmp_path, written=written)
    assert not report.passed
    assert failed(report) == {check}, report.problems()
    table = "transaction_parents" if check.startswith(("dag", "no_self")) else "transactions"
    assert outcome(report, check, table).observed_value in (1, 2)  # a duplicate counts twice


@WHEN
def test_a_failed_dag_check_quotes_the_offending_edge(
    ledger: Path, tmp_path: Path, written: bool
) -> None:
    run_sql(ledger, "INSERT INTO transaction_parents VALUES (10, 999999)")
    _, report = gate(ledger, tmp_path, written=written)
    assert (
        "10 -> 999999" in outcome(report, "dag_references_resolve", "transaction_parents").details
    )


def test_counts_that_differ_from_the_snapshot_fail(ledger: Path, tmp_path: Path) -> None:
    info = create_backup(ledger, tmp_path / "backups")
    counts = {**info.row_counts, "transactions": 301, "vanished": 4}
    report = check_ledger(
        Path(info.backup_path),
        PROFILE,
        snapshot_counts=counts,
        reports_dir=None,
        run_name="mismatch",
        suite_prefix="blockchain",
    )
    mismatch = outcome(report, "row_count_matches_snapshot")
    assert not mismatch.success and mismatch.observed_value == 300
    assert outcome(report, "row_count_matches_snapshot", "vanished").observed_value == (
        "table missing"
    )
    assert failed(report) == {"row_count_matches_snapshot"}
    assert outcome(report, "row_count_matches_snapshot", "nodes").success


def delete_newest(ledger: Path, count: int) -> None:
    newest = f"SELECT id FROM transactions ORDER BY id DESC LIMIT {count}"
    run_sql(
        ledger,
        f"DELETE FROM transaction_parents WHERE child_id IN ({newest}) OR parent_id IN ({newest})",
        f"DELETE FROM transactions WHERE id IN ({newest})",
    )


@WHEN
def test_fewer_transactions_than_the_previous_backup_fail_unless_allowed(
    ledger: Path, tmp_path: Path, written: bool
) -> None:
    first, report = gate(ledger, tmp_path, written=written)
    assert report.passed
    delete_newest(ledger, 10)

    second, report = gate(ledger, tmp_path, written=written)
    assert failed(report) == {"transactions_not_decreased"}
    drop = outcome(report, "transactions_not_decreased")
    assert drop.observed_value == 290 and first.name in drop.details and "300" in drop.details

    # The failed backup is no floor for the next one: the last good total (300) still is.
    third = Path(create_backup(ledger, tmp_path / "backups").backup_path)
    assert previous_backup(third, read_meta(third)) is not None
    assert previous_backup(third, read_meta(third)).name == first.name  # type: ignore[union-attr]
    allowed = gate_backup(third, PROFILE, reports_dir=None, allow_decrease=True)
    assert allowed.passed, allowed.problems()
    assert "transactions_not_decreased" not in {o.name for o in allowed.expectations}
    assert any("decreased from 300" in w and "--allow-decrease" in w for w in allowed.warnings)

    # The rejected backup stays failed through a plain verify; verify + gate with the
    # flag (what `dagvault verify --quality --allow-decrease` runs) clears it.
    assert read_meta(second).verification.status == "failed"
    assert not verify_backup(second).ok
    assert read_meta(second).verification.status == "failed"
    assert verify_backup(second, recheck_quality=True).ok
    assert gate_backup(second, PROFILE, reports_dir=None, allow_decrease=True).passed
    assert read_meta(second).verification.status == "verified"


def test_a_database_without_the_ledger_tables_gets_generic_checks_and_a_warning(
    tmp_path: Path,
) -> None:
    db = make_database(
        tmp_path / "other.db",
        ["CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)"]
        + [f"INSERT INTO accounts (name) VALUES ('a{i}')" for i in range(7)],
    )
    _, report = gate(db, tmp_path)
    assert report.passed
    assert [(o.name, o.table, o.observed_value) for o in report.expectations] == [
        ("row_count_matches_snapshot", "accounts", 7)
    ]
    assert any("'transactions' not found" in w for w in report.warnings)
    assert any("'nodes' not found" in w for w in report.warnings)


def test_a_profile_naming_missing_columns_skips_those_checks_with_a_warning(
    ledger: Path, tmp_path: Path
) -> None:
    info = create_backup(ledger, tmp_path / "backups")
    profile = LedgerProfile(hash_column="txid", parents_table="edges")
    report = gate_backup(Path(info.backup_path), profile, reports_dir=None)
    assert report.passed
    names = {o.name for o in report.expectations}
    assert names == ALL_CHECKS - {"hash_not_null", "hash_unique", "dag_references_resolve"} - {
        "no_self_approval"
    }
    assert any("transactions.txid not found" in w for w in report.warnings)
    assert any("DAG checks skipped" in w and "'edges'" in w for w in report.warnings)


def test_a_compressed_delta_is_rebuilt_for_the_gate_and_leaves_no_temp_file(
    ledger: Path, tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    create_backup(ledger, backups)
    run_sql(ledger, "INSERT INTO transaction_parents VALUES (12, 12)")
    info = create_backup(ledger, backups, kind="incremental", compression=True)
    assert info.backup_type == "Incremental"
    report = gate_backup(Path(info.backup_path), PROFILE, reports_dir=None)
    assert failed(report) == {"no_self_approval"}
    assert hidden_leftovers(backups) == []


@WHEN
def test_a_failed_gate_is_recorded_and_marks_the_kept_backup_failed(
    ledger: Path, tmp_path: Path, written: bool
) -> None:
    run_sql(ledger, "INSERT INTO transaction_parents VALUES (11, 11)")
    path, report = gate(ledger, tmp_path, written=written)
    assert not report.passed and path.is_file()
    info = read_meta(path)
    assert info.quality is not None and info.quality["passed"] is False
    recorded = {e["name"]: e for e in info.quality["expectations"]}
    assert recorded["no_self_approval"]["observed_value"] == 1
    assert recorded["hash_unique"]["success"] is True
    assert info.verification.status == "failed"
    assert any(p.startswith("quality: no_self_approval") for p in info.verification.problems)
    (entry,) = list_backups(path.parent)
    assert entry.info is not None and entry.info.verification.status == "failed"

    # Intact bytes do not clear a failed gate: a plain verify keeps it failed.
    again = verify_backup(path)
    assert not again.ok and any("dagvault verify --quality" in p for p in again.problems)
    assert read_meta(path).verification.status == "failed"
    # Re-checked, the data still fails: still failed, the file still there.
    assert verify_backup(path, recheck_quality=True).ok
    assert not gate_backup(path, PROFILE, reports_dir=None).passed
    assert read_meta(path).verification.status == "failed" and path.is_file()


def test_sidecars_without_a_quality_record_still_read_and_a_bad_one_is_rejected(
    ledger: Path, tmp_path: Path
) -> None:
    path = Path(create_backup(ledger, tmp_path / "backups").backup_path)
    document = read_meta_json(path)
    del document["quality"]  # as written before the gates existed
    write_meta_json(path, document)
    assert read_meta(path).quality is None
    document["quality"] = {"passed": "yes"}
    write_meta_json(path, document)
    with pytest.raises(VerificationError, match="not a data-quality record"):
        read_meta(path)


def test_quality_settings_come_from_env_and_file(tmp_path: Path) -> None:
    config = tmp_path / "dagvault.json"
    config.write_text(
        json.dumps(
            {
                "quality": {"min_timestamp": 0, "max_future_seconds": 60},
                "ledger": {"parents_table": "edges", "hash_column": "txid"},
            }
        )
    )
    settings = load_settings(
        config_file=config, environ={"DAGVAULT_REPORTS_DIR": str(tmp_path / "r")}
    )
    assert settings.reports_dir == tmp_path / "r"
    assert (settings.min_timestamp, settings.max_future_seconds) == (0, 60)
    profile = ledger_profile(settings)
    assert (profile.parents_table, profile.hash_column) == ("edges", "txid")
    assert profile.parent_child_column == "child_id"  # the rest keep their defaults
    config.write_text(json.dumps({"quality": {"min_timestamp": -1}}))
    with pytest.raises(ConfigError, match=r"quality\.min_timestamp"):
        load_settings(config_file=config, environ={})


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "jsonl"])
def test_an_intact_export_passes_the_export_gate(ledger: Path, tmp_path: Path, fmt: str) -> None:
    result = export_database(fmt, database=ledger, out=tmp_path / "export")
    assert count_exported(Path(result.export_path)) == result.row_counts
    report = check_export(
        Path(result.export_path), result.row_counts, reports_dir=tmp_path / "reports"
    )
    assert report.passed, report.problems()
    assert {o.name for o in report.expectations} == {
        "every_table_exported",
        "export_rows_equal_snapshot",
    }
    assert report.data_docs_index and Path(report.data_docs_index).is_file()


def test_a_tampered_or_incomplete_export_fails_the_export_gate(
    ledger: Path, tmp_path: Path
) -> None:
    result = export_database("parquet", database=ledger, out=tmp_path / "export")
    export = Path(result.export_path)
    reports = None
    wrong = {**result.row_counts, "nodes": 17}
    report = check_export(export, wrong, reports_dir=reports)
    assert failed(report) == {"export_rows_equal_snapshot"}
    assert "differing: nodes" in report.failures[0].details

    tamper_parquet(export / "transactions.parquet", 250)
    report = check_export(export, result.row_counts, reports_dir=reports)
    assert failed(report) == {"export_rows_equal_snapshot"}
    assert report.failures[0].observed_value == 1  # one table differs
    assert "transactions 250/300" in report.failures[0].details

    (export / "nodes.parquet").unlink()
    report = check_export(export, result.row_counts, reports_dir=reports)
    assert failed(report) == {"every_table_exported", "export_rows_equal_snapshot"}


def test_an_sql_dump_is_left_to_the_writer_check_with_a_warning(
    ledger: Path, tmp_path: Path
) -> None:
    result = export_database("sql", database=ledger, out=tmp_path / "dump.sql")
    report = check_export(
        Path(result.export_path), result.row_counts, reports_dir=tmp_path / "r", fmt="sql"
    )
    assert report.passed and report.expectations == [] and report.warnings


def test_a_gate_failed_while_written_is_in_the_operations_journal(
    ledger: Path, tmp_path: Path
) -> None:
    run_sql(ledger, "INSERT INTO transaction_parents VALUES (11, 11)")
    path, report = gate(ledger, tmp_path, written=True)
    assert not report.passed
    lines = [json.loads(line) for line in journal_path(path.parent).read_text().splitlines()]
    assert [(e["operation"], e["outcome"]) for e in lines if e["outcome"] != "success"] == [
        ("backup", "quality_gate_failed")
    ]


def test_a_gate_that_cannot_run_while_written_leaves_the_sound_backup_to_be_gated_after(
    ledger: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a file").write_text("")
    options = GateOptions(PROFILE, reports_dir=tmp_path / "a file" / "reports")
    info = create_backup(ledger, tmp_path / "backups", verify=True, gate=options)
    assert info.verification.status == "verified" and info.quality is None
    assert read_meta(Path(info.backup_path)).quality is None  # no verdict: gated afterwards
    assert "The quality gate could not run while the backup was written" in caplog.text
    assert hidden_leftovers(tmp_path / "backups") == []
    with pytest.raises(StorageError, match="Not a directory"):  # (what the flow then does)
        gate_backup(Path(info.backup_path), PROFILE, reports_dir=options.reports_dir)
