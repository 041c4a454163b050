"""restore_backup on real SQLite files: live targets, new files, options, page sizes.

Every database is a real file in tmp_path; "another process" is a real child Python
process holding its own SQLite connection, driven line by line over pipes.
"""

from __future__ import annotations

import json
import logging
import re
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

from dagvault.authtag import UNAUTHENTICATED
from dagvault.backup import create_backup
from dagvault.errors import ConfigError, RestoreError
from dagvault.meta import BackupInfo, read_meta
from dagvault.restore import RestoreResult, restore_backup
from dagvault.sample import create_sample_ledger
from dagvault.verify import verify_file

Digest = dict[str, str]

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


def modify_ledger(path: Path) -> None:
    """Deletes, updates, inserts and a new table, in one committed transaction (a restore
    of an earlier backup drops the table: it passes allow_schema_change, see schema_guard)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM transaction_parents WHERE child_id > 250")
        conn.execute("DELETE FROM transactions WHERE id > 250")
        conn.execute("UPDATE transactions SET fee = fee + 7 WHERE id % 3 = 0")
        conn.execute("UPDATE nodes SET stake = stake + 1")
        conn.execute("INSERT INTO nodes VALUES ('intruder', x'00', 1, 0, 0, 1)")
        conn.execute("CREATE TABLE scratch (k INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO scratch (v) VALUES (?)", [("x",)] * 10)
        conn.execute("COMMIT")


def backup_of(db: Path, backup_dir: Path) -> tuple[Path, BackupInfo, Digest]:
    digest = digest_of(db)
    info = create_backup(db, backup_dir)
    return Path(info.backup_path), info, digest


def pre_restore_files(db: Path) -> list[Path]:
    """Pre-restore data files (and any temp or sidecar file of one) beside ``db``."""
    return sorted(path for path in db.parent.iterdir() if f"{db.name}.pre_restore_" in path.name)


def set_journal_mode(db: Path, mode: str) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode


# 1 ------------------------------------------------------------------------------------


def test_restore_over_modified_live_database(
    ledger: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backup, info, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)
    modified = digest_of(ledger)
    assert modified != at_backup and set(modified) - set(at_backup) == {"scratch"}

    caplog.set_level(logging.INFO, logger="dagvault")
    logger = logging.getLogger("dagvault")
    logger.addHandler(caplog.handler)  # also captured if something turned propagation off
    try:
        started = int(time.time())
        result = restore_backup(backup, ledger, allow_schema_change=True)
        finished = int(time.time())
    finally:
        logger.removeHandler(caplog.handler)

    assert digest_of(ledger) == at_backup
    assert scalar(ledger, "PRAGMA integrity_check") == "ok"
    assert scalar(ledger, "PRAGMA journal_mode") == "wal"  # the live database stays WAL

    assert isinstance(result, RestoreResult)
    assert result.success is True
    assert result.backup_info.checksum == info.checksum
    assert result.backup_info.backup_path == str(backup)
    assert result.backup_info.row_counts == info.row_counts
    assert result.backup_info.verified  # verified before the restore, recorded in .meta
    assert started <= result.restore_timestamp <= finished
    unauthenticated, dropped = result.warnings  # no key; the override is audit-logged
    assert unauthenticated == UNAUTHENTICATED and "drops table 'scratch'" in dropped
    assert result.database_path == str(ledger)

    assert result.pre_restore_backup is not None
    pre = Path(result.pre_restore_backup)
    match = re.fullmatch(re.escape(ledger.name) + r"\.pre_restore_(\d+)", pre.name)
    assert match, pre.name
    assert pre.parent == ledger.parent
    assert started <= int(match.group(1)) <= finished
    assert pre.is_file()
    assert pre_restore_files(ledger) == [pre, pre.with_name(pre.name + ".meta")]
    pre_info = read_meta(pre)  # raises if the sidecar is missing or invalid
    assert pre_info.file_size == pre.stat().st_size
    assert pre_info.row_counts["transactions"] == 250
    assert pre_info.row_counts["scratch"] == 10
    report = verify_file(pre)
    assert report.ok, report.problems
    assert report.checks["checksum"] == "ok"
    assert report.checks["integrity_check"] == "ok"
    assert digest_of(pre) == modified

    messages = [r.getMessage() for r in caplog.records if r.name == "dagvault"]
    created = [i for i, m in enumerate(messages) if m.startswith("📦 Created pre-restore backup:")]
    restored = [
        i for i, m in enumerate(messages) if m.startswith("✅ Database restored from backup:")
    ]
    assert created and restored, messages
    assert str(pre) in messages[created[0]]
    assert str(backup) in messages[restored[0]]
    assert created[0] < restored[0]


def test_consecutive_restores_keep_each_pre_restore_backup(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)
    modified = digest_of(ledger)
    first = restore_backup(backup, ledger, allow_schema_change=True)
    second = restore_backup(backup, ledger)
    assert first.pre_restore_backup and second.pre_restore_backup
    assert first.pre_restore_backup != second.pre_restore_backup
    assert digest_of(Path(first.pre_restore_backup)) == modified
    assert digest_of(Path(second.pre_restore_backup)) == at_backup
    assert digest_of(ledger) == at_backup


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


# 3 and 4 ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_restore_into_new_or_empty_file(ledger: Path, tmp_path: Path, kind: str) -> None:
    backup, info, at_backup = backup_of(ledger, tmp_path / "backups")
    target = tmp_path / "elsewhere" / "new.db"
    if kind == "empty":
        target.parent.mkdir()
        target.touch()

    result = restore_backup(backup, target)

    assert result.success
    assert result.pre_restore_backup is None
    assert "the target database was empty; no pre-restore backup taken" in result.warnings
    assert pre_restore_files(target) == []
    assert digest_of(target) == at_backup
    assert scalar(target, "PRAGMA integrity_check") == "ok"
    assert result.backup_info.checksum == info.checksum
    assert not Path(f"{target}-journal").exists()


def test_restore_without_pre_restore_backup(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)

    result = restore_backup(
        backup,
        ledger,
        pre_restore_backup=False,
        pre_restore_off_by="--no-pre-restore-backup",
        allow_schema_change=True,
    )

    assert result.success
    assert result.pre_restore_backup is None
    assert "no pre-restore backup taken: --no-pre-restore-backup turned it off" in result.warnings
    assert pre_restore_files(ledger) == []
    assert digest_of(ledger) == at_backup


def test_restore_without_verification_warns(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)

    result = restore_backup(backup, ledger, verify=False, allow_schema_change=True)

    assert result.success
    assert "backup was not verified before the restore (--no-verify)" in result.warnings
    assert result.pre_restore_backup is not None
    assert digest_of(ledger) == at_backup


def test_restore_without_checksum_verification_warns(ledger: Path, tmp_path: Path) -> None:
    backup, _, at_backup = backup_of(ledger, tmp_path / "backups")
    modify_ledger(ledger)

    result = restore_backup(backup, ledger, verify_checksum=False, allow_schema_change=True)

    assert any("checksum not verified" in w for w in result.warnings), result.warnings
    assert digest_of(ledger) == at_backup


def test_restore_backup_onto_itself_is_refused(ledger: Path, tmp_path: Path) -> None:
    backup, _, _ = backup_of(ledger, tmp_path / "backups")
    image = backup.read_bytes()
    with pytest.raises(ConfigError) as caught:
        restore_backup(backup, backup)
    assert caught.value.exit_code == 2
    assert backup.read_bytes() == image


# 8 ------------------------------------------------------------------------------------


def _ledger_with_page_size(path: Path, page_size: int) -> Path:
    create_sample_ledger(path, 200, seed=11, nodes=8)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA page_size").fetchone()[0] == page_size
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    return path


def test_restore_8k_page_backup_into_4k_wal_database(ledger: Path, tmp_path: Path) -> None:
    source = _ledger_with_page_size(tmp_path / "source8k.db", 8192)
    backup, info, at_backup = backup_of(source, tmp_path / "backups")
    assert info.page_size == 8192
    assert scalar(ledger, "PRAGMA page_size") == 4096
    before = digest_of(ledger)

    result = restore_backup(backup, ledger)

    assert result.success
    assert digest_of(ledger) == at_backup
    assert scalar(ledger, "PRAGMA integrity_check") == "ok"
    assert scalar(ledger, "PRAGMA page_size") == 8192
    assert scalar(ledger, "PRAGMA journal_mode") == "wal"
    assert result.pre_restore_backup is not None
    assert digest_of(Path(result.pre_restore_backup)) == before


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
