"""The pieces of the Prefect UI's story that need no server (issue #17): cron schedules from
the backup interval, artifact keys and cells, step lines, Data Docs links, run names, the
summary, progress listeners and the automations' definitions. The server half is
tests/integration/test_prefect_ui.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from uuid import uuid4

import pytest

from dagvault import progress
from dagvault.config import load_settings
from dagvault.errors import ConfigError, DatabaseLocked
from deployments.automations import automations
from deployments.plan import full_backup_cron, schedule_values
from flows._story import Story, backup_name, database_of
from tasks._runtime import artifact_key
from tasks._story import cell, checks_line, fields, leaf
from tasks.quality import docs_link, gate_line


@pytest.mark.parametrize(
    ("hours", "cron"),
    [
        (1, "0 * * * *"),
        (6, "0 */6 * * *"),
        (24, "0 0 * * *"),
        (48, "0 0 */2 * *"),
        (168, "0 0 * * 0"),
    ],
)
def test_the_full_backup_interval_becomes_a_cron_schedule(hours: int, cron: str) -> None:
    assert full_backup_cron(hours) == cron


@pytest.mark.parametrize("hours", [5, 36, 24 * 30])
def test_an_interval_cron_cannot_express_is_refused_with_a_remedy(hours: int) -> None:
    with pytest.raises(ConfigError, match=f"BACKUP_INTERVAL_HOURS={hours}") as refused:
        full_backup_cron(hours)
    assert "168" in refused.value.hint


def test_inactive_schedules_say_why(tmp_path: Path) -> None:
    critical = schedule_values_for(tmp_path, {"backup": {"preset": "critical"}})
    assert critical["incremental_active"] is False
    assert "SCHEDULE INACTIVE" in critical["incremental_note"]
    assert "SCHEDULE INACTIVE" in critical["replicate_note"]
    daily = schedule_values_for(tmp_path, {"backup": {"replicas": [str(tmp_path / "r")]}})
    assert (daily["full_backup_cron"], daily["incremental_note"], daily["replicate_note"]) == (
        "0 0 * * *",
        "",
        "",
    )


def schedule_values_for(tmp_path: Path, document: dict[str, object]) -> dict[str, object]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(document))
    return schedule_values(str(config))


def test_artifact_keys_follow_prefects_rules_and_stay_distinct() -> None:
    keys = [
        artifact_key("backup", "blockchain"),
        artifact_key("quality-export", "parquet", "Node_Ledger.2"),
        artifact_key("backup", "knoten-ü"),
        artifact_key("backup", "knoten-ö"),
        artifact_key("backup", "台帳"),
    ]
    assert keys[:2] == ["backup-blockchain", "quality-export-parquet-node-ledger-2"]
    assert all(re.fullmatch(r"[a-z0-9-]+", key) for key in keys)
    assert len(set(keys)) == len(keys)  # ü and ö are not both "knoten-"
    assert artifact_key("backup", "台帳") == keys[4]  # stable: versions line up


def test_cells_are_written_for_people() -> None:
    assert cell(1_572_864, "file_size") == "1.5 MiB (1,572,864 bytes)"
    assert cell(0, "bytes_freed") == "0 B" and cell(1023, "file_size") == "1023 B"
    assert cell(5700) == "5,700"
    assert cell({"b": 2, "a": 1}) == '{"a": 1, "b": 2}'
    assert cell(["x", "ü"]) == '["x", "ü"]'
    assert [cell(v) for v in (None, "", [], {})] == ["", "", "", ""]
    assert cell(0) == "0" and cell(False) == "no"
    assert cell(0.1234, "duration_seconds") == "0.123 s"
    assert fields({"parent": None, "total_transactions": 12}) == [
        {"field": "parent", "value": ""},
        {"field": "total_transactions", "value": "12"},
    ]


def test_step_lines_name_the_outcome() -> None:
    checks = {"checksum": "ok", "integrity_check": "ok", "row_counts": "ok"}
    assert checks_line(checks) == "checksum ok, integrity ok, row counts ok"
    outcome = {"name": "hash_unique", "success": True}
    report = {"passed": True, "expectations": [outcome] * 10}
    assert gate_line(report) == "passed 10/10"
    failed = {"passed": False, "expectations": [outcome, {"name": "x", "success": False}]}
    assert gate_line(failed) == "FAILED 1/2: x"


def test_names_show_no_credentials_of_a_url() -> None:
    assert leaf("s3://key:secret@bucket/prefix/ledger_1.db") == "ledger_1.db"
    assert leaf("sftp://user:pw@host/") == "host"
    assert leaf("/var/backups/ledger_1.incr") == "ledger_1.incr"
    assert leaf(None) == ""


def test_data_docs_link_to_the_served_directory(tmp_path: Path) -> None:
    page = tmp_path / "reports" / "data_docs" / "validations" / "a b.html"
    url = "https://node1.example:8000/data-docs/"
    assert docs_link(str(page), str(tmp_path / "reports"), url) == f"{url}validations/a b.html"
    assert docs_link(str(page), str(tmp_path / "reports"), None) == page.as_uri()
    assert docs_link(str(page), str(tmp_path / "elsewhere"), url) == page.as_uri()


def test_the_reports_url_is_an_http_url() -> None:
    settings = load_settings(environ={"DAGVAULT_REPORTS_URL": "http://node1:8000/data-docs"})
    assert settings.reports_url == "http://node1:8000/data-docs/"
    for bad in ("file:///srv/reports", "node1:8000", "https://"):
        with pytest.raises(ConfigError, match="DAGVAULT_REPORTS_URL"):
            load_settings(environ={"DAGVAULT_REPORTS_URL": bad})


def test_run_names_come_from_the_parameters(tmp_path: Path) -> None:
    settings = load_settings({"database_path": str(tmp_path / "ledger.db")}, environ={})
    assert database_of({"settings": settings}) == "ledger"
    assert database_of({"database_path": "/srv/node-7.db", "settings": settings}) == "node-7"
    assert backup_name({"backup_type": "Incremental"}, "ledger") == "backup-ledger-incremental"
    assert backup_name({}, "ledger") == "backup-ledger-full"
    assert backup_name({"backup_type": "weekly"}, "") == "backup-weekly"  # the flow refuses it


def test_the_summary_says_what_failed_and_what_to_do(tmp_path: Path) -> None:
    settings = load_settings({"database_path": str(tmp_path / "ledger.db")}, environ={})
    story = Story("backup", settings)
    story.note(file_size=2048, parent=None, problems="a | b")
    text = story.markdown(DatabaseLocked("The database stayed locked", "Retry later."))
    assert text.startswith("### ❌ backup failed: ledger")
    assert "| file size | 2.0 KiB (2,048 bytes) |" in text
    assert "| parent |  |" in text and "a \\| b" in text
    assert "**Error:** The database stayed locked" in text and "**Try:** Retry later." in text
    assert Story("backup", settings).markdown(None).startswith("### ✅ backup completed")


def test_progress_listeners_nest() -> None:
    seen: list[tuple[str, str, int]] = []
    with progress.listening(lambda s, d, t: seen.append(("bar", s, d))):
        with progress.listening(lambda s, d, t: seen.append(("ui", s, d))):
            progress.report("backup", 1, 2)
        progress.report("backup", 2, 2)
    progress.report("backup", 2, 2)  # nobody listens
    assert seen == [("bar", "backup", 1), ("ui", "backup", 1), ("bar", "backup", 2)]


def test_each_automation_notifies_the_chosen_block() -> None:
    block = uuid4()
    defined = {a.name: a for a in automations(block)}
    assert set(defined) == {
        "dagvault: backup failed",
        "dagvault: quality gate failed",
        "dagvault: restore drill failed",
        "dagvault: replication lag",
    }
    for automation in defined.values():
        (action,) = automation.actions
        assert action.block_document_id == block and "{{" in action.body
    drill = defined["dagvault: restore drill failed"].trigger
    assert drill.match_related["prefect.resource.name"] == ["dagvault-restore-drill"]
