"""The health report's computations on synthetic journals and backups (what each number
means, when it warns), its rendering (Markdown, charts, the self-contained page), and a
report of a directory that real core runs on an odd ledger wrote.

The integration half (`dagvault report` on a directory of real backups, the Prefect
artifact) is tests/integration/test_report.py."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _helpers import ODD_LEDGER_CONFIG, add_odd_transactions

from dagvault import journal
from dagvault.backup import create_backup
from dagvault.errors import BackupNotFound, ConfigError, StorageError
from dagvault.ledger import LedgerProfile
from dagvault.report import (
    BackupPoint,
    Entry,
    Thresholds,
    build_report,
    health_report,
    read_journal,
    report_directory,
)
from dagvault.report_render import PAGE, markdown, summary_rows, write_files
from dagvault.retention import cleanup_old_backups
from dagvault.verify import verify_backup
from dagvault_cli.commands.report import render
from dagvault_cli.main import main

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MiB = 2**20
GiB = 2**30
PROFILE = LedgerProfile(**ODD_LEDGER_CONFIG["ledger"])


def _at(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def _backup(days_ago: float, size: int = 10 * MiB, transactions: int = 0) -> BackupPoint:
    return BackupPoint(_at(days_ago), f"b{days_ago}", "Full", size, transactions, 2.0, None)


def _entry(days_ago: float, operation: str, outcome: str, **kw: object) -> Entry:
    return Entry(_at(days_ago), operation, outcome, **kw)  # type: ignore[arg-type]


def test_runs_failures_and_the_rising_failure_rate() -> None:
    entries = [
        # Before the last week: 10 backups, one failed.
        *(_entry(20 - i, "backup", "success", seconds=3.0) for i in range(9)),
        _entry(11, "backup", "failure", seconds=1.0),
        # The last week: 4 backups, of which one failed and one wrote a backup whose gate
        # failed (a success line, then its quality_gate_failed line): 2 of 4 failed.
        _entry(6, "backup", "success", seconds=4.0),
        _entry(5, "backup", "success", seconds=6.0),
        _entry(5, "backup", journal.QUALITY_GATE_FAILED, seconds=1.0),
        _entry(4, "backup", "failure", seconds=0.5),
        _entry(3, "backup", "success", seconds=5.0),
        _entry(45, "backup", "failure"),  # outside the 30-day window: not counted
        _entry(2, "verify", "success"),  # a line of an older version: no seconds
    ]
    report = build_report("b", entries, [], free_bytes=None, now=NOW)
    backup, verify = report.operations
    assert (backup.operation, backup.runs, backup.failed) == ("backup", 14, 3)
    assert backup.success_rate == pytest.approx(11 / 14)
    # Durations of the runs that did not fail: nine of 3 s, then 4, 6, 5 s.
    assert (backup.median_seconds, backup.max_seconds) == (3.0, 6.0)
    assert (verify.runs, verify.failed, verify.median_seconds) == (1, 0, None)
    assert report.failure_rate_recent == pytest.approx(2 / 5)  # 4 backups + 1 verify
    assert report.failure_rate_before == pytest.approx(1 / 10)
    (warning,) = report.warnings
    assert warning == "Failure rate 40% in the last 7 days (rising from 10%), above 5%"
    assert report.runs_per_day[_at(5).date().isoformat()] == {"runs": 1, "failed": 1}

    # The same rate in both periods is still a warning above the threshold (not falling);
    # a clean week, or a rate under the threshold, is none.
    before = entries[:10]
    same = [*before, *(_entry(1 + i / 10, "verify", "success") for i in range(9))]
    same.append(_entry(0.5, "verify", "failure"))
    (warning,) = build_report("b", same, [], free_bytes=None, now=NOW).warnings
    assert warning == "Failure rate 10% in the last 7 days (as before), above 5%"
    clean = [*before, _entry(1, "backup", "success")]
    assert build_report("b", clean, [], free_bytes=None, now=NOW).warnings == []
    lenient = Thresholds(max_failure_rate=0.5)
    assert (
        build_report("b", entries, [], free_bytes=None, now=NOW, thresholds=lenient).warnings == []
    )


def test_rpo_over_time_ledger_growth_and_a_late_backup() -> None:
    backups = [
        BackupPoint(_at(3), "a", "Full", 5 * MiB, 1_000, 2.0, 100 * MiB),
        BackupPoint(_at(2), "b", "Incremental", 1 * MiB, 1_500, 1.0, 110 * MiB),
        BackupPoint(
            _at(2) + timedelta(hours=6), "c", "Incremental", 1 * MiB, 1_600, 1.0, 112 * MiB
        ),
    ]
    report = build_report("b", [], backups, free_bytes=None, now=NOW)
    assert [seconds for _, seconds in report.rpo] == [86_400.0, 6 * 3600.0]
    assert report.current_rpo_seconds == pytest.approx(42 * 3600)
    assert report.ledger_growth_per_day["transactions"] == pytest.approx(600 / 1.25)
    assert report.ledger_growth_per_day["bytes"] == pytest.approx(12 * MiB / 1.25, rel=1e-3)
    # Due every 24 h: 42 h is late only past two intervals.
    assert report.warnings == []
    hourly = Thresholds(interval_hours=12)
    (late,) = build_report("b", [], backups, free_bytes=None, now=NOW, thresholds=hourly).warnings
    assert late == "The newest backup is 42 h old (backups are due every 12 h)"


def test_the_disk_forecast_nets_what_cleanup_freed_against_new_backups() -> None:
    backups = [_backup(20), *(_backup(d) for d in (6, 5, 4, 3, 2, 1))]  # 6 × 10 MiB this week
    freed = [_entry(d, "cleanup", "success", details={"bytes_freed": 5 * MiB}) for d in (4, 2)]
    report = build_report("b", freed, backups, free_bytes=GiB, now=NOW)
    growth = (60 - 10) * MiB / 7  # a full week: older backups show the directory was in use
    assert report.disk["growth_bytes_per_day"] == pytest.approx(growth, abs=1)
    assert report.disk["days_until_full"] == pytest.approx(GiB / growth, abs=0.1)
    assert report.warnings == []  # ~143 days is far; 30 is the default threshold
    assert build_report(
        "b", freed, backups, free_bytes=GiB, now=NOW, thresholds=Thresholds(min_disk_days=200)
    ).warnings == [
        f"The backup filesystem fills in about {GiB / growth:.0f} days at the current growth "
        "(threshold 200 days)"
    ]
    # Retention freeing as much as the backups add: not growing, no forecast, no warning.
    more = [*freed, _entry(1, "prune", "success", details={"bytes_freed": 50 * MiB})]
    steady = build_report("b", more, backups, free_bytes=GiB, now=NOW)
    assert steady.disk["days_until_full"] is None and steady.warnings == []
    # A new directory's first backup counts over a day, not over its few seconds.
    first = build_report("b", [], [_backup(1 / 86_400)], free_bytes=GiB, now=NOW)
    assert first.disk["growth_bytes_per_day"] == 10 * MiB


def test_restore_drills_from_their_journal_details() -> None:
    drills = [
        _entry(9, "drill", "success", seconds=8.0, details={"rto_seconds": 7.5, "backup": "a.db"}),
        _entry(2, "drill", "success", seconds=9.0, details={"rto_seconds": 6.5, "backup": "b.db"}),
        _entry(1, "drill", "failure", seconds=3.0, details={"rto_seconds": 2.0, "backup": "c.db"}),
    ]
    report = build_report("b", drills, [], free_bytes=None, now=NOW)
    summary = report.drills
    assert (summary["runs"], summary["failed"]) == (3, 1)
    assert (summary["last_outcome"], summary["last_backup"]) == ("failure", "c.db")
    assert (summary["last_rto_seconds"], summary["median_rto_seconds"]) == (2.0, 6.5)
    assert f"The last restore drill ({_at(1).isoformat(timespec='seconds')}) failed" in (
        report.warnings
    )


def test_an_empty_or_missing_directory_is_a_short_report(tmp_path: Path) -> None:
    for directory in (tmp_path, tmp_path / "not-made-yet"):
        report = health_report(directory).to_json()
        assert report["backups"] == [] and report["operations"] == []
        assert report["warnings"] == [] and report["disk"]["free_bytes"] > 0
        text = render(report)
        assert "nothing to report" in text and len(text.splitlines()) == 2
        assert "nothing to report" in markdown(report)
        written = write_files(report, tmp_path / "reports")
        assert [p.name for p in written] == [PAGE]  # no chart without data
        assert "nothing to report" in written[0].read_text()


def test_a_report_of_real_runs_on_an_odd_ledger(odd_ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    for _ in range(3):
        create_backup(odd_ledger, backups, profile=PROFILE)
        add_odd_transactions(odd_ledger, 20)
    with pytest.raises(BackupNotFound):
        verify_backup(backups / "missing.db")
    freed = cleanup_old_backups(backups, 2).bytes_freed
    lines = [json.loads(line) for line in journal.journal_path(backups).read_text().splitlines()]
    assert all(isinstance(line["seconds"], float) for line in lines)
    assert lines[-1]["details"] == {"bytes_freed": freed} and freed > 0

    report = health_report(backups).to_json()
    stats = {s["operation"]: s for s in report["operations"]}
    assert (stats["backup"]["runs"], stats["backup"]["failed"]) == (3, 0)
    assert (stats["verify"]["runs"], stats["verify"]["failed"]) == (1, 1)
    assert stats["backup"]["median_seconds"] > 0
    # The two kept backups, from their .meta; the ledger grew by 20 transactions between.
    assert [b["transactions"] for b in report["backups"]] == [220, 240]
    assert all(b["ledger_bytes"] % 8192 == 0 for b in report["backups"])  # 8 KiB pages
    assert report["failure_rate_recent"] == pytest.approx(1 / 5)
    json.dumps(report)  # the flow's result and `--json` are plain JSON


def test_the_page_embeds_its_charts_and_stale_charts_go(odd_ledger: Path, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    create_backup(odd_ledger, backups)
    add_odd_transactions(odd_ledger, 5)
    create_backup(odd_ledger, backups)
    drill = {"rto_seconds": 1.5, "backup": "x.db"}
    journal.record(backups, "drill", journal.SUCCESS, seconds=2.0, details=drill)
    reports = tmp_path / "reports"
    written = write_files(health_report(backups).to_json(), reports)
    names = [p.name for p in written]
    assert names[-1] == PAGE and {"sizes.png", "rpo.png", "drills.png"} <= set(names)
    for png in written[:-1]:
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = written[-1].read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(written) - 1
    assert base64.b64decode(embedded[0]).startswith(b"\x89PNG")
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing outside the page
    assert "<td>backup</td>" in page

    # A later report without data removes the charts of the earlier one.
    assert write_files(health_report(tmp_path / "new").to_json(), reports) == [written[-1]]
    assert [p.name for p in (reports / "health").iterdir()] == [PAGE]


def test_markdown_and_terminal_show_the_warnings_and_tables() -> None:
    entries = [_entry(1, "backup", "failure", seconds=1.0), _entry(2, "backup", "success")]
    report = build_report("/srv/backups", entries, [_backup(2)], free_bytes=GiB, now=NOW)
    document = json.loads(json.dumps(report.to_json()))  # as the flow returns it
    text = markdown(document)
    assert "# Backup health of /srv/backups" in text
    assert "**⚠️ Failure rate 50% in the last 7 days" in text
    assert "| backup | 2 | 1 | 50% |" in text
    assert dict(summary_rows(document))["backups in window"] == "1"
    terminal = render(document)
    assert "⚠️  Failure rate 50%" in terminal and "backup     2     1       50%" in terminal


def test_the_journal_reader_skips_damaged_lines(tmp_path: Path) -> None:
    journal.record(tmp_path, "backup", journal.SUCCESS, seconds=1.25, details={"n": 1})
    with open(journal.journal_path(tmp_path), "ab") as fh:
        fh.write(b'not json\n{"time": "yesterday", "operation": "x", "outcome": "success"}\n')
        fh.write(b'{"operation": "backup"}\n{"time":"2026-01-01T00:00:00+00:00","operation":"ba')
        fh.write(b'\n{"time":"2026-01-01T00:00:00","operation":"verify","outcome":"success"}\n')
    naive, first = read_journal(tmp_path)  # oldest first
    assert (first.operation, first.seconds, first.details) == ("backup", 1.25, {"n": 1})
    assert naive.time == datetime(2026, 1, 1, tzinfo=UTC)  # a hand-written line: UTC
    not_a_directory = tmp_path / journal.JOURNAL_FILE
    with pytest.raises(StorageError):
        read_journal(not_a_directory)


def test_a_storage_target_or_a_bad_option_is_refused_before_a_flow_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError):
        report_directory("s3://bucket/node-1")
    assert main(["report", "--backup-dir", "s3://bucket/node-1"]) == 2
    assert main(["report", "--days", "0"]) == 2
    err = capsys.readouterr().err
    assert "is a storage target" in err and "Invalid days" in err
    assert "Traceback" not in err
