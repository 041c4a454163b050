"""Messages that point the right way (issue #14): each names what is actually wrong —
the edited .meta field, where a setting came from, the config file's line and column,
the object the user asked for — and every failed backup logs the description's ❌ line.

Run through the real CLI against the test Prefect server, on the odd ledger.

Unit half (no server, no child process of the test's own); the rest is in
tests/integration/test_messages.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _shared.messages import _edit_sidecar

from dagvault.config import load_settings
from dagvault.errors import ConfigError
from dagvault.verify import verify_file


def _plus_one(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.update({key: d[key] + 1})


def _row_count(d: dict[str, Any]) -> None:
    d["row_counts"]["tx_log"] -= 1


EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "file_size": (_plus_one("file_size"), "field 'file_size' says"),
    "total_transactions": (_plus_one("total_transactions"), "field 'total_transactions' says"),
    "total_nodes": (_plus_one("total_nodes"), "field 'total_nodes' says"),
    "timestamp": (_plus_one("timestamp"), "field 'timestamp' says"),
    "created_at": (
        lambda d: d.update(created_at="2021-05-01T00:00:00+00:00"),
        "field 'created_at' says 2021-05-01",
    ),
    "row_counts": (_row_count, "row_counts says tx_log: 199, the file has 200"),
    "backup_type": (lambda d: d.update(backup_type="Incremental"), "field 'backup_type' says"),
    "compression_enabled": (
        lambda d: d.update(compression_enabled=True),
        "field 'compression_enabled' says true",
    ),
    "database_path": (
        lambda d: d.update(database_path="/elsewhere.db"),
        "no checkable field disagrees, so a field such as database_path",
    ),
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_each_edited_field_is_named_and_the_backup_still_refused(
    odd_backup: Path, field: str
) -> None:
    change, named = EDITS[field]
    _edit_sidecar(odd_backup, change)
    report = verify_file(odd_backup)
    assert not report.ok
    [problem] = report.problems
    assert problem.startswith(f"metadata: {odd_backup.name}.meta was edited after it was written")
    assert named in problem
    # exactly the edited field is blamed: the others are checked and agree
    others = [f"'{f}'" for f in EDITS if f not in (field, "row_counts", "database_path")]
    assert not [f for f in others if f"field {f}" in problem], problem


@pytest.mark.parametrize(
    ("text", "where", "mistake"),
    [
        ('{"backup": {"retention_count": 5 "preset": "production"}}', "line 1, column 34",
         "a comma is missing between two entries, found '\"'"),
        ('{\n  // daily\n  "backup": {}\n}', "line 2, column 3",
         "expected a key in double quotes, found '/'"),
        ("{'backup': {}}", "line 1, column 2", "expected a key in double quotes, found \"'\""),
        ('{"backup": {}} {}', "line 1, column 16", "text after the end of the JSON object"),
        ('{"backup": {"retention_count": 5', "line 1, column 33", "the file ends before"),
        ("", "line 1, column 1", "the file ends before the JSON object does"),
        ('{"backup": {"items": [1, 2,]}}', "line 1, column 28", "a trailing comma before ']'"),
    ],
)  # fmt: skip
def test_json_mistakes_are_described(tmp_path: Path, text: str, where: str, mistake: str) -> None:
    config = tmp_path / "c.json"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, environ={})
    assert caught.value.exit_code == 2
    assert f"{config} is not valid JSON: {where}: {mistake}" in caught.value.message


def test_a_byte_order_mark_is_no_mistake(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_bytes(b'\xef\xbb\xbf{"backup": {"retention_count": 7}}')
    assert load_settings(config_file=config, environ={}).retention_count == 7
