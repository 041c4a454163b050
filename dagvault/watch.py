"""Notice commits to a live ledger cheaply, and say when they call for a backup.

The watcher reads, once per ``interval_seconds``, what SQLite itself keeps current:
``PRAGMA data_version`` on one open read-only connection (it moves when another
connection commits), the size, mtime and inode of the database and its ``-wal`` file, and
``max(rowid)`` of the transactions table and of the tables the operator names (a B-tree
seek to the last leaf, never a count of a large table). Each statement runs in autocommit
and ends at once: in WAL mode a reader never blocks the node's writer, and no read
transaction stays open to hold back a checkpoint.

It reports what it saw as events (no Prefect here: ``flows/watch.py`` sends them to
Prefect, where the incremental-backup deployment's triggers act on them):

* ``dagvault.ledger.changed``: the ledger has commits not yet reported; at most one per
  ``emit_gap_seconds``, so a busy ledger costs the Prefect server a few events a minute;
* ``dagvault.ledger.significant-change``: K new transactions since the last one, or a new
  row in a table the operator named (a checkpoint or milestone table).

``BackupTrigger`` is the deployment triggers' rule for the watcher that takes the backups
itself (no Prefect server; docs/continuous.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagvault.errors import ConfigError, DagvaultError, DatabaseNotFound, NotASQLiteDatabase

CHANGED = "dagvault.ledger.changed"
SIGNIFICANT = "dagvault.ledger.significant-change"
log = logging.getLogger("dagvault")


@dataclass(frozen=True)
class WatchRules:
    # How often the ledger is looked at; a change is seen this much later at most.
    interval_seconds: float = 1.0
    # At most one `changed` event per this many seconds (a ledger taking 20 commits a
    # second would otherwise send 20 events a second); adds this much to the RPO lag.
    emit_gap_seconds: float = 5.0
    # A `significant-change` after this many new transactions; 0: off.
    significant_transactions: int = 0
    # A `significant-change` as soon as one of these tables has a new row.
    significant_tables: tuple[str, ...] = ()


def ledger_resource(database: Path) -> dict[str, str]:
    """The Prefect resource of a ledger: its id names the file, a label holds its path."""
    path = database.resolve()
    return {
        "prefect.resource.id": f"dagvault.ledger.{path.stem}",
        "prefect.resource.name": path.name,
        "dagvault.database.path": str(path),
    }


@dataclass(frozen=True)
class LedgerEvent:
    name: str
    resource: dict[str, str]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Reading:
    """What one look at the ledger saw."""

    data_version: int
    inode: int
    database_bytes: int
    database_mtime_ns: int
    wal_bytes: int
    wal_mtime_ns: int
    transactions: int | None  # max(rowid) of the transactions table; None: not countable
    tables: dict[str, int]  # max(rowid) of each named table (0: empty)

    def differs(self, other: Reading) -> bool:
        return (
            self.data_version,
            self.inode,
            self.database_bytes,
            self.database_mtime_ns,
            self.wal_bytes,
            self.wal_mtime_ns,
        ) != (
            other.data_version,
            other.inode,
            other.database_bytes,
            other.database_mtime_ns,
            other.wal_bytes,
            other.wal_mtime_ns,
        )


def _quoted(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


class LedgerProbe:
    """One read-only connection to the ledger and the statements a look needs."""

    def __init__(
        self, database: Path, transactions_table: str, tables: tuple[str, ...] = ()
    ) -> None:
        self.database = database
        self.transactions_table = transactions_table
        self.tables = tables
        self._conn: sqlite3.Connection | None = None
        self._inode = 0
        self._open()
        self.countable = self._rowid_table(transactions_table)
        for table in tables:
            if not self._rowid_table(table):
                raise ConfigError(
                    f"watch.significant_tables names {table!r}, which is not a table with "
                    f"rowids in {database} (missing, a view, or WITHOUT ROWID)",
                    "Name a table the node appends a row to at each checkpoint, or drop it "
                    "from watch.significant_tables / DAGVAULT_WATCH_TABLES.",
                )

    def _open(self) -> None:
        if not self.database.is_file():
            raise DatabaseNotFound(
                f"The ledger {self.database} does not exist",
                "Point --db / DATABASE_PATH at the node's database.",
            )
        self.close()
        try:
            # mode=ro: this connection can never write; autocommit: no transaction stays
            # open between looks.
            self._conn = sqlite3.connect(
                f"{self.database.absolute().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=1.0,
            )
            self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise NotASQLiteDatabase(
                f"Cannot read the ledger {self.database}: {exc}",
                "Check that it is an SQLite database this user can read.",
            ) from None
        self._inode = self.database.stat().st_ino

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _rowid_table(self, table: str) -> bool:
        return self._is_table(table) and self._high_water(table) is not None

    def _is_table(self, table: str) -> bool:
        """A table, not a view: max(rowid) of a view would run its query."""
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return row is not None

    def _high_water(self, table: str) -> int | None:
        assert self._conn is not None
        try:
            row = self._conn.execute(f"SELECT max(rowid) FROM {_quoted(table)}").fetchone()
        except sqlite3.OperationalError:  # no such table, or no rowid (WITHOUT ROWID, view)
            return None
        return int(row[0] or 0)

    def read(self) -> Reading:
        try:
            database = self.database.stat()
        except FileNotFoundError:  # (a restore swaps files atomically: never this)
            raise DatabaseNotFound(
                f"The ledger {self.database} was removed while it was watched",
                "Put the database back (`dagvault restore`); `dagvault up` restarts the "
                "watcher by itself.",
            ) from None
        # A restore swaps a new file in under the same name: follow it.
        if database.st_ino != self._inode:
            self._open()
        assert self._conn is not None
        wal = _stat(Path(f"{self.database}-wal"))
        try:
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            transactions = self._high_water(self.transactions_table) if self.countable else None
            tables = {table: self._high_water(table) or 0 for table in self.tables}
        except sqlite3.OperationalError as exc:  # busy past the timeout: look again later
            log.warning("⚠️  Could not read the ledger %s this time: %s", self.database, exc)
            version, transactions, tables = -1, None, {}
        return Reading(
            data_version=version,
            inode=database.st_ino,
            database_bytes=database.st_size,
            database_mtime_ns=database.st_mtime_ns,
            wal_bytes=wal.st_size if wal else 0,
            wal_mtime_ns=wal.st_mtime_ns if wal else 0,
            transactions=transactions,
            tables=tables,
        )


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:  # no WAL: rollback journal mode, or checkpointed and closed
        return None


@dataclass
class _Pending:
    """Changes seen since the last `changed` event."""

    since: float
    looks: int = 0
    first: Reading | None = None


class Watcher:
    """Turns successive readings into events. ``poll()`` takes one look."""

    def __init__(
        self,
        probe: LedgerProbe,
        rules: WatchRules,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.rules = rules
        self.clock = clock
        self.resource = ledger_resource(probe.database)
        self.previous = probe.read()
        self.pending: _Pending | None = None
        self.last_emit = -math.inf
        # High-water marks at the last significant-change event.
        self.base_transactions = self.previous.transactions
        self.base_tables = dict(self.previous.tables)
        if rules.significant_transactions and not probe.countable:
            log.warning(
                "⚠️  %s has no rowid table %r: the rule of %d new transactions is off; the "
                "RPO target and watch.significant_tables still apply",
                probe.database,
                probe.transactions_table,
                rules.significant_transactions,
            )

    def _look(self) -> tuple[Reading, float]:
        reading = self.probe.read()
        now = self.clock()
        if reading.differs(self.previous):
            if self.pending is None:
                self.pending = _Pending(since=now, first=self.previous)
            self.pending.looks += 1
        self.previous = reading
        return reading, now

    def poll(self) -> list[LedgerEvent]:
        reading, now = self._look()
        events: list[LedgerEvent] = []
        reasons = self._significance(reading)
        if self.pending and (reasons or now - self.last_emit >= self.rules.emit_gap_seconds):
            events.append(self._changed(reading, now))
        if reasons:
            events.append(self._significant(reading, reasons))
        return events

    def flush(self) -> list[LedgerEvent]:
        """The `changed` event of what is still unreported (when the watcher stops).

        It takes a last look first: commits made since the previous look (while a backup
        the watcher took was running, say) are reported too, not lost with the process."""
        try:
            reading, now = self._look()
        except DagvaultError:  # (removed or unreadable: report what the looks saw)
            reading, now = self.previous, self.clock()
        return [self._changed(reading, now)] if self.pending else []

    def _significance(self, reading: Reading) -> list[str]:
        reasons = []
        k = self.rules.significant_transactions
        new = _grown(reading.transactions, self.base_transactions)
        if k and new >= k:
            reasons.append(f"{new} new transactions (watch.significant_transactions {k})")
        for table, high in reading.tables.items():
            if high > self.base_tables.get(table, 0):
                reasons.append(f"a new row in {table}")
        return reasons

    def _changed(self, reading: Reading, now: float) -> LedgerEvent:
        assert self.pending is not None and self.pending.first is not None
        first = self.pending.first
        payload = {
            "database": str(self.probe.database),
            "looks_with_changes": self.pending.looks,
            "pending_seconds": round(now - self.pending.since, 3),
            "data_version": reading.data_version,
            "database_bytes": reading.database_bytes,
            "wal_bytes": reading.wal_bytes,
            "wal_growth_bytes": reading.wal_bytes - first.wal_bytes,
            "replaced": reading.inode != first.inode,
            "new_transactions": _grown(reading.transactions, first.transactions),
        }
        self.pending = None
        self.last_emit = now
        return LedgerEvent(CHANGED, self.resource, payload)

    def _significant(self, reading: Reading, reasons: list[str]) -> LedgerEvent:
        payload = {
            "database": str(self.probe.database),
            "reasons": reasons,
            "new_transactions": _grown(reading.transactions, self.base_transactions),
            "tables": {
                table: high - self.base_tables.get(table, 0)
                for table, high in reading.tables.items()
            },
        }
        self.base_transactions = reading.transactions
        self.base_tables = dict(reading.tables)
        return LedgerEvent(SIGNIFICANT, self.resource, payload)


def _grown(now: int | None, before: int | None) -> int:
    """New rows between two high-water marks (0 when unknown, or after a restore went back)."""
    if now is None or before is None:
        return 0
    return max(0, now - before)


@dataclass
class BackupTrigger:
    """The deployment triggers of prefect.yaml, for a watcher that takes the backups itself:
    a significant change at once; otherwise the first change after each window of
    ``window_seconds`` (Prefect's Reactive trigger: fire at once, then not again until the
    window has passed)."""

    window_seconds: float
    window_end: float = field(default=-math.inf)

    def fires(self, event: LedgerEvent, now: float) -> bool:
        if event.name == SIGNIFICANT:
            return True
        if now < self.window_end:
            return False
        self.window_end = now + self.window_seconds
        return True


def trigger_window(rpo_target_seconds: int) -> int:
    """The RPO trigger's window: half the target, so that a backup fired at the end of a
    window, delayed by the event gap and its own run, still lands within the target."""
    return max(1, rpo_target_seconds // 2)


def watch(
    watcher: Watcher,
    on_event: Callable[[LedgerEvent], None],
    stop: Callable[[float], bool],
    on_stop: Callable[[LedgerEvent], None] | None = None,
) -> None:
    """Poll until ``stop(timeout)`` (e.g. ``threading.Event().wait``) returns True; then
    ``on_stop`` gets what is still unreported (``Watcher.flush``), on an error too."""
    with contextlib.closing(watcher.probe):
        try:
            while not stop(watcher.rules.interval_seconds):
                for event in watcher.poll():
                    on_event(event)
        finally:
            if on_stop is not None:
                try:
                    for event in watcher.flush():
                        on_stop(event)
                except Exception as exc:  # never in place of why the watcher stopped
                    log.warning("⚠️  What changed last could not be reported: %s", exc)
