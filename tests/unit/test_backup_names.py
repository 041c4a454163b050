"""Backup names: the first part of every file name a backup writes. Letters and digits of
any script are welcome (a ledger named ``knoten-ü.db`` backs up under its own name);
anything that could leave BACKUP_DIR, hide a file or overflow a file name is refused."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from dagvault.backup import create_backup, validate_name
from dagvault.errors import ConfigError


@pytest.mark.parametrize(
    "name", ["ledger", "node-1.main_2", "knoten-ü", "節點", "ledger.v2", "9" * 101, "é" * 100]
)
def test_names_of_any_script_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../x",
        "a/b",
        "a\\b",
        ".hidden",
        "-flag",
        "a..b",
        "a b",
        "tab\tname",
        "zero\u200bwidth",  # a formatting character looks like nothing in a listing
        "bad\udcff",  # an undecodable byte of a file name (surrogateescape)
        "x" * 102,
        "節" * 101,  # 101 characters, but 303 bytes of UTF-8
    ],
)
def test_names_that_could_escape_hide_or_overflow_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="Invalid backup name"):
        validate_name(name)


def test_a_ledger_named_in_another_script_backs_up_under_its_own_name(tmp_path: Path) -> None:
    ledger = tmp_path / "knoten-ü.db"
    with closing(sqlite3.connect(ledger)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    info = create_backup(ledger, tmp_path / "backups")
    assert Path(info.backup_path).name.startswith("knoten-ü_")
