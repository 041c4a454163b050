"""restore_backup on real SQLite files: live targets, new files, options, page sizes.

Every database is a real file in tmp_path; "another process" is a real child Python
process holding its own SQLite connection, driven line by line over pipes.

Integration half; the tests that need no server or child process are in
tests/unit/test_restore.py."""

from __future__ import annotations

import json
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from _helpers import content_digest as digest_of
from _helpers import scalar
from _shared.restore import _ledger_with_page_size, backup_of, modify_ledger

from dagvault.errors import RestoreError
from dagvault.restore import restore_backup

# A child process that keeps ONE connection open and runs the SQL it is sent (one JSON
# string per line), answering {"ok": true, "rows": [...]} or {"ok": false, "error": ...}.
_CHILD = r"""
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=float(sys.argv[2]))
conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
print(json.dumps({"ok": True, "rows": [[conn.execute("PRAGMA journal_mode").fetchone()[0]]]}),
      flush=True)
for line in sys.stdin:
    try:
        rows = [list(row) for row in conn.execute(json.loads(line)).fetchall()]
        reply = {"ok": True, "rows": rows}
    except sqlite3.Error as exc:
        reply = {"ok": False, "error": str(exc)}
    print(json.dumps(reply), flush=True)
"""


class ChildSqlError(Exception):
    pass


class SqlChild:
    """Another process with a long-lived connection to ``db``."""

    def __init__(self, db: Path, busy_timeout: float = 5.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db), str(busy_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.journal_mode = self._reply()[0][0]

    def _reply(self, timeout: float = 30.0) -> list[list[Any]]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"child process {self.proc.pid} did not answer within {timeout} s"
        line = self.proc.stdout.readline()
        assert line, f"child process exited with {self.proc.wait()}"
        reply = json.loads(line)
        if not reply["ok"]:
            raise ChildSqlError(reply["error"])
        return list(reply["rows"])

    def sql(self, statement: str) -> list[list[Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(statement) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def scalar(self, statement: str) -> Any:
        return self.sql(statement)[0][0]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def child() -> Iterator[Callable[..., SqlChild]]:
    started: list[SqlChild] = []

    def start(db: Path, busy_timeout: float = 5.0) -> SqlChild:
        started.append(SqlChild(db, busy_timeout))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


def set_journal_mode(db: Path, mode: str) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode


# 2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_open_connection_in_another_process_sees_restored_data(
    ledger: Path, tmp_path: Path, child: Callable[..., SqlChild], mode: str
) -> None:
    if mode != "wal":
        set_journal_mode(ledger, mode)
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)

    node = child(ledger)
    assert node.journal_mode == mode
    assert node.scalar("SELECT count(*) FROM transactions") == 250
    assert node.scalar("SELECT count(*) FROM scratch") == 10
    fees_at_backup = scalar(backup, "SELECT sum(fee) FROM transactions")
    assert node.scalar("SELECT sum(fee) FROM transactions") != fees_at_backup

    restore_backup(backup, ledger, allow_schema_change=True)

    # Same connection, never reopened: it sees the restored rows and schema.
    assert node.scalar("SELECT count(*) FROM transactions") == 300
    assert node.scalar("SELECT sum(fee) FROM transactions") == fees_at_backup
    assert node.scalar("SELECT count(*) FROM nodes WHERE node_id = 'intruder'") == 0
    with pytest.raises(ChildSqlError, match="no such table"):
        node.sql("SELECT count(*) FROM scratch")
    assert node.scalar("PRAGMA journal_mode") == mode

    # ... and it can still write.
    node.sql("INSERT INTO nodes VALUES ('after-restore', x'01', 5, 0, 0, 0)")
    node.sql("UPDATE transactions SET fee = fee + 1 WHERE id = 1")
    assert node.scalar("SELECT count(*) FROM nodes") == 17
    node.close()

    assert scalar(ledger, "PRAGMA integrity_check") == "ok"
    assert scalar(ledger, "SELECT count(*) FROM nodes WHERE node_id = 'after-restore'") == 1
    after = digest_of(ledger)
    assert after["transaction_parents"] == at_backup["transaction_parents"]
    assert after["nodes"] != at_backup["nodes"]


def test_restore_other_page_size_with_open_wal_connection_is_refused(
    ledger: Path, tmp_path: Path, child: Callable[..., SqlChild]
) -> None:
    source = _ledger_with_page_size(tmp_path / "source8k.db", 8192)
    backup, _, _ = backup_of(source, tmp_path / "backups")
    before = digest_of(ledger)
    node = child(ledger)
    assert node.journal_mode == "wal"
    assert node.scalar("SELECT count(*) FROM transactions") == 300

    started = time.monotonic()
    with pytest.raises(RestoreError) as caught:
        restore_backup(backup, ledger, busy_timeout=0.5)
    assert time.monotonic() - started < 10
    assert caught.value.exit_code == 7
    assert "page size" in caught.value.message
    assert caught.value.hint

    # The other process is undisturbed and the database unchanged.
    assert node.scalar("SELECT count(*) FROM transactions") == 300
    assert node.scalar("PRAGMA journal_mode") == "wal"
    node.close()
    assert digest_of(ledger) == before
    assert scalar(ledger, "PRAGMA page_size") == 4096
    assert scalar(ledger, "PRAGMA journal_mode") == "wal"
