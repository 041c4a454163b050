"""Helpers shared by the backup, verify, retention and fault tests: real files, real processes."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault.catalog import CatalogEntry
from dagvault.digest import database_digest
from dagvault.journal import JOURNAL_FILE
from dagvault.meta import BackupInfo, Verification, sidecar_checksum
from dagvault.restores import HISTORY_SUFFIX

LOCK_NAME = ".dagvault.lock"


def sha3_file(path: Path) -> str:
    """SHA3-256 of the file's bytes, computed independently of dagvault.checksum."""
    return hashlib.sha3_256(path.read_bytes()).hexdigest()


def content_digest(path: Path) -> dict[str, str]:
    """Schema and row digests of a database (a plain connection: leaves no -wal behind)."""
    assert path.is_file(), path  # sqlite3.connect would create an empty database instead
    with closing(sqlite3.connect(path)) as conn:
        return database_digest(conn)


def query(path: Path, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, tuple(params)).fetchall()


def scalar(path: Path, sql: str) -> Any:
    """The first column of the first row of ``sql`` on an existing database."""
    assert path.is_file(), path
    return query(path, sql)[0][0]


def integrity(path: Path) -> list[str]:
    return [row[0] for row in query(path, "PRAGMA integrity_check")]


def hidden_leftovers(directory: Path) -> list[str]:
    """Hidden files (temp files) in ``directory`` other than dagvault's lock files (the
    backup directory's and a database's ``.<db>.dagvault.lock``), the operations journal and
    a database's restore history (``.<db>.dagvault-restores.json``), which stay by design."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name.startswith(".")
        and not p.name.endswith((LOCK_NAME, HISTORY_SUFFIX))
        and p.name != JOURNAL_FILE
    )


def visible_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def read_meta_json(backup: Path) -> dict[str, Any]:
    return json.loads(backup.with_name(backup.name + ".meta").read_text())


def write_meta_json(backup: Path, document: dict[str, Any]) -> None:
    """Write an edited sidecar with a matching meta_checksum: a forged sidecar, so that
    the checks behind the metadata check are what a test exercises."""
    signed = {**document, "meta_checksum": sidecar_checksum(document)}
    backup.with_name(backup.name + ".meta").write_text(json.dumps(signed, indent=2))


def cli_subcommands() -> list[str]:
    """The names of the CLI's subcommands, from its parser."""
    from dagvault_cli.main import build_parser

    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def copy_of(ledger: Path, directory: Path) -> Path:
    """A private copy of a (checkpointed, closed) fixture ledger."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "blockchain.db"
    shutil.copyfile(ledger, target)
    return target


def shrink_ledger(db: Path, keep: int) -> None:
    """A different committed state: deletes, updates, inserts and a new index (not a new
    table: restoring an earlier backup would drop it, which an unauthenticated restore
    refuses without allow_schema_change; see dagvault.schema_guard)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM transaction_parents WHERE child_id > ?", (keep,))
        conn.execute("DELETE FROM transactions WHERE id > ?", (keep,))
        conn.execute("UPDATE transactions SET fee = fee + 1 WHERE id % 5 = 0")
        conn.execute("INSERT INTO nodes VALUES ('intruder', x'00', 1, 0, 0, 1)")
        conn.execute("CREATE INDEX scratch_fee ON transactions(fee)")
        conn.execute("COMMIT")


def make_database(
    path: Path,
    statements: Iterable[str],
    *,
    page_size: int | None = None,
    journal_mode: str = "delete",
) -> Path:
    """A database built from ``statements`` (run in one transaction after the pragmas)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        if page_size is not None:
            conn.execute(f"PRAGMA page_size={page_size}")
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    return path


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (``sys.argv[1:] == args``)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def dead_pid() -> int:
    """The pid of a process that has already exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# A child that reports a create_backup outcome as one JSON line on stdout.
BACKUP_CHILD = """
import json, sys
from pathlib import Path
from dagvault.backup import create_backup
from dagvault.errors import DagvaultError

def main(db, directory):
    try:
        info = create_backup(Path(db), Path(directory))
    except DagvaultError as exc:
        return {"ok": False, "type": type(exc).__name__,
                "classes": [c.__name__ for c in type(exc).__mro__],
                "exit_code": exc.exit_code, "message": exc.message, "hint": exc.hint}
    return {"ok": True, "backup_path": info.backup_path}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until something listens on 127.0.0.1:``port``; fails at once if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def at(text: str) -> int:
    """Unix seconds of an ISO time written without zone, read as UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def entry(
    name: str,
    timestamp: int,
    backup_type: str = "Full",
    *,
    parent: str | None = None,
    status: str = "unverified",
    order: int = 0,
    metadata: bool = True,
) -> CatalogEntry:
    """A catalog entry as list_backups would return it, without files behind it."""
    path = Path("/backups") / name
    if not metadata:
        return CatalogEntry(path, 4096, timestamp, None, "metadata file is missing")
    extra = {"parent": parent, "parent_checksum": "1" * 64} if parent else {}
    info = BackupInfo(
        timestamp=timestamp,
        backup_path=str(path),
        database_path="/data/ledger.db",
        file_size=4096,
        total_transactions=1,
        total_nodes=1,
        backup_type=backup_type,
        compression_enabled=False,
        checksum="0" * 64,
        metadata=extra,
        created_at=f"2025-01-01T00:00:00.{order:06d}+00:00",
        verification=Verification(status=status),  # type: ignore[arg-type]
    )
    return CatalogEntry(path, 4096, timestamp, info)


# A ledger unlike the sample, the way real nodes differ from it: 8 KiB pages, 20 KB signature
# blobs, WITHOUT ROWID tables, a view and a trigger, other table names, unicode, NULLs and
# 64-bit integers. The quality gate finds its tables through ODD_LEDGER_CONFIG's profile.
ODD_LEDGER_CONFIG: dict[str, Any] = {
    "ledger": {
        "transactions_table": "tx_log",
        "nodes_table": "validators",
        "parents_table": "tx_edges",
        "parent_child_column": "child",
        "parent_parent_column": "parent",
        "id_column": "tx_id",
        "hash_column": "digest",
        "amount_column": "value",
        "fee_column": "tip",
        "timestamp_column": "seen_at",
    }
}

_ODD_SCHEMA = (
    "CREATE TABLE validators (pubkey TEXT PRIMARY KEY, label TEXT, stake INTEGER NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE tx_log (tx_id INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE,"
    " origin TEXT REFERENCES validators(pubkey), value INTEGER NOT NULL, tip INTEGER NOT NULL,"
    " seen_at INTEGER NOT NULL, signature BLOB, memo TEXT)",
    "CREATE TABLE tx_edges (child INTEGER NOT NULL, parent INTEGER NOT NULL,"
    " PRIMARY KEY (child, parent)) WITHOUT ROWID",
    "CREATE INDEX tx_log_seen ON tx_log(seen_at)",
    "CREATE VIEW stake_by_label AS SELECT label, SUM(stake) AS stake FROM validators"
    " GROUP BY label",
    "CREATE TRIGGER tx_log_memo_default AFTER INSERT ON tx_log WHEN NEW.memo = ''"
    " BEGIN UPDATE tx_log SET memo = NULL WHERE tx_id = NEW.tx_id; END",
)


def add_odd_transactions(db: Path, count: int, *, blob_size: int = 20_000) -> None:
    """Append ``count`` transactions (with DAG edges to earlier ones) to an odd ledger."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        start = conn.execute("SELECT COALESCE(MAX(tx_id), 0) FROM tx_log").fetchone()[0]
        origins = [row[0] for row in conn.execute("SELECT pubkey FROM validators")]
        now = int(time.time())
        for tx_id in range(start + 1, start + count + 1):
            conn.execute(
                "INSERT INTO tx_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tx_id,
                    hashlib.sha3_256(f"odd-{tx_id}".encode()).hexdigest(),
                    origins[tx_id % len(origins)] if tx_id % 7 else None,
                    2**62 + tx_id if tx_id % 5 == 0 else tx_id * 1_000,
                    tx_id % 3,
                    now - 3_600 + tx_id % 3_000,
                    os.urandom(blob_size),
                    None if tx_id % 4 == 0 else f"übertragung №{tx_id} ✓ 送金",
                ),
            )
            for parent in {tx_id - 1, tx_id // 2} - {0, tx_id}:
                conn.execute("INSERT INTO tx_edges VALUES (?, ?)", (tx_id, parent))
        conn.execute("COMMIT")


def make_odd_ledger(path: Path, transactions: int = 200, *, blob_size: int = 20_000) -> Path:
    """A WAL-mode ledger unlike the sample (see ODD_LEDGER_CONFIG); returns ``path``."""
    make_database(
        path,
        [
            *_ODD_SCHEMA,
            *(
                f"INSERT INTO validators VALUES ('pk-{n:02d}-ключ', "
                f"{'NULL' if n % 3 == 0 else repr(f'validator {n} ✨')}, {2**40 + n})"
                for n in range(12)
            ),
        ],
        page_size=8192,
        journal_mode="wal",
    )
    add_odd_transactions(path, transactions, blob_size=blob_size)
    return path


def write_odd_ledger_config(directory: Path, **sections: dict[str, Any]) -> Path:
    """A config file with the odd ledger's profile (plus any other sections); returns it."""
    path = directory / "dagvault-odd.json"
    path.write_text(json.dumps({**ODD_LEDGER_CONFIG, **sections}, indent=2))
    return path


def legacy_sidecar(document: dict[str, Any], version: int) -> dict[str, Any]:
    """``document`` (format 3) as dagvault wrote it in format ``version`` (1 or 2): typed
    values, and row_counts and warnings inside metadata."""
    typed = {"page_size": int, "page_count": int, "changed_pages": int}
    metadata: dict[str, Any] = {
        k: typed[k](v) if k in typed else v for k, v in document["metadata"].items()
    }
    metadata["duration_seconds"] = float(metadata["duration_seconds"])
    metadata["read_in_place"] = metadata["read_in_place"] == "true"
    metadata |= {"row_counts": document["row_counts"], "warnings": document["warnings"]}
    if document.get("encryption"):
        metadata["encryption"] = document["encryption"]
    old = {k: v for k, v in document.items() if k not in ("row_counts", "warnings", "encryption")}
    old |= {"metadata": metadata, "format_version": version}
    del old["meta_checksum"]
    if version >= 2:
        old["meta_checksum"] = sidecar_checksum(old)
    return old


def run_main(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``dagvault ARGV`` run in this process (commands that
    start no flow run: unit tests). main() sets up the process it runs in (environment,
    logging handlers); both are put back, or later ``dagvault`` subprocesses of this worker
    would inherit a CLI's terminal settings."""
    import contextlib
    import io
    import logging
    from unittest import mock

    from dagvault_cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    core_logger = logging.getLogger("dagvault")
    handlers = list(core_logger.handlers)
    os.chdir(cwd)
    try:
        with (
            mock.patch.dict(os.environ),
            contextlib.redirect_stderr(stderr),
            contextlib.redirect_stdout(stdout),
        ):
            code = main(argv)
    finally:
        os.chdir(previous)
        core_logger.handlers[:] = handlers
    return code, stdout.getvalue(), stderr.getvalue()
