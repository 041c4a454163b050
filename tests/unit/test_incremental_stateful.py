"""A state machine of a live ledger and its backups: writes, schema changes, VACUUM,
restores into the live database, and full / incremental / differential backups
(sometimes compressed) in any order.

After every new backup, EVERY backup taken so far is restored into a fresh file and
must hold exactly what the live database held when that backup was taken (the
content digest recorded then). Parent selection is checked against a model: an
incremental's parent is the newest backup, a differential's the newest full.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from _helpers import content_digest, integrity
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dagvault.backup import create_backup
from dagvault.restore import restore_backup

KINDS = ("full", "incremental", "differential")


@dataclass(frozen=True)
class Taken:
    path: Path
    backup_type: str
    digest: dict[str, str]
    tables: tuple[str, ...]  # of the live database then


class IncrementalBackups(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="dagvault-stateful-")
        root = Path(self._tmp.name)
        (root / "live").mkdir()
        self.db = root / "live" / "node.db"
        self.backups = root / "backups"
        self.scratch = root / "restores"
        self.tables = ["items"]
        self.schema_changes = 0
        self.taken: list[Taken] = []
        self.checked = 0

    @initialize(
        auto_vacuum=st.booleans(),
        first=st.sampled_from(KINDS),
        second=st.sampled_from(KINDS[1:]),
        compression=st.tuples(st.booleans(), st.booleans()),
        change=st.sampled_from(
            [
                "UPDATE items SET k = k + 1 WHERE id % ? = 0",
                "DELETE FROM items WHERE id % ? = 0",
                "DELETE FROM items WHERE id > 200 - 200 / ?",  # the tail: frees whole pages
            ]
        ),
        modulus=st.integers(2, 24),
    )
    def create(
        self,
        auto_vacuum: bool,
        first: str,
        second: str,
        compression: tuple[bool, bool],
        change: str,
        modulus: int,
    ) -> None:
        with closing(sqlite3.connect(self.db, isolation_level=None)) as conn:
            if auto_vacuum:  # deletes then shrink the file: deltas that truncate the image
                conn.execute("PRAGMA auto_vacuum=FULL")
            assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
            conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
            rng = random.Random(0)
            conn.executemany(
                "INSERT INTO items (k, v) VALUES (?, ?)",
                [(n, rng.randbytes(rng.randint(0, 1500))) for n in range(200)],
            )
        # Every run starts with a chain (Hypothesis tries many short runs): a first backup,
        # a full either way, then a change and a delta against it.
        self.take(first, compression[0])
        self.write(change, (modulus,))
        self.take(second, compression[1])

    def teardown(self) -> None:
        self._tmp.cleanup()

    # ----------------------------------------------------------------------- writes

    def write(self, sql: str, params: tuple[object, ...] | list[tuple[object, ...]] = ()) -> None:
        with closing(sqlite3.connect(self.db, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            if isinstance(params, list):
                conn.executemany(sql, params)
            else:
                conn.execute(sql, params)
            conn.execute("COMMIT")

    @rule(
        table=st.integers(0, 10),
        rows=st.integers(1, 40),
        size=st.integers(0, 3000),
        seed=st.integers(0, 2**16),
    )
    def insert(self, table: int, rows: int, size: int, seed: int) -> None:
        name = self.tables[table % len(self.tables)]
        rng = random.Random(seed)
        self.write(
            f"INSERT INTO {name} (k, v) VALUES (?, ?)",
            [(rng.randint(0, 999), rng.randbytes(rng.randint(0, size))) for _ in range(rows)],
        )

    @rule(
        table=st.integers(0, 10),
        modulus=st.integers(2, 24),
        rest=st.integers(0, 23),
        size=st.integers(0, 3000),
    )
    def update(self, table: int, modulus: int, rest: int, size: int) -> None:
        name = self.tables[table % len(self.tables)]
        self.write(
            f"UPDATE {name} SET k = k + 1, v = randomblob(?) WHERE id % ? = ?",
            (size, modulus, rest % modulus),
        )

    @rule(table=st.integers(0, 10), modulus=st.integers(2, 24), rest=st.integers(0, 23))
    def delete(self, table: int, modulus: int, rest: int) -> None:
        name = self.tables[table % len(self.tables)]
        self.write(f"DELETE FROM {name} WHERE id % ? = ?", (modulus, rest % modulus))

    @rule(change=st.sampled_from(["table", "column", "index"]), table=st.integers(0, 10))
    def schema_change(self, change: str, table: int) -> None:
        self.schema_changes += 1
        n = self.schema_changes
        name = self.tables[table % len(self.tables)]
        with closing(sqlite3.connect(self.db, isolation_level=None)) as conn:
            if change == "table":
                conn.execute(f"CREATE TABLE extra{n} (id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
                conn.execute(f"INSERT INTO extra{n} (k, v) SELECT k, v FROM {name}")
                self.tables.append(f"extra{n}")
            elif change == "column":
                conn.execute(f"ALTER TABLE {name} ADD COLUMN c{n} TEXT DEFAULT 'c{n}'")
                conn.execute(f"UPDATE {name} SET c{n} = hex(k) WHERE id % 3 = 0")
            else:
                conn.execute(f"CREATE INDEX ix{n} ON {name} (k, id)")

    @rule()
    def vacuum(self) -> None:
        with closing(sqlite3.connect(self.db, isolation_level=None)) as conn:
            conn.execute("VACUUM")

    @rule(which=st.integers(0, 100))
    def restore_into_live(self, which: int) -> None:
        """Put an older backup back into the live database (same file, new content)."""
        if not self.taken:
            return
        taken = self.taken[which % len(self.taken)]
        # An older backup may lack tables added since: a schema change the operator allows.
        restore_backup(taken.path, self.db, allow_schema_change=True)
        assert content_digest(self.db) == taken.digest
        self.tables = list(taken.tables)

    # ----------------------------------------------------------------------- backups

    # Three rules of nine take backups, two of them deltas: chains get long enough.
    @rule(kind=st.sampled_from(KINDS), compression=st.booleans())
    def backup(self, kind: str, compression: bool) -> None:
        self.take(kind, compression)

    @rule(compression=st.booleans())
    def backup_incremental(self, compression: bool) -> None:
        self.take("incremental", compression)

    @rule(compression=st.booleans())
    def backup_differential(self, compression: bool) -> None:
        self.take("differential", compression)

    def take(self, kind: str, compression: bool) -> None:
        info = create_backup(self.db, self.backups, kind=kind, compression=compression)
        path = Path(info.backup_path)
        assert info.compression_enabled is compression
        assert path.name.endswith(".zst") is compression
        newest_full = next((t for t in reversed(self.taken) if t.backup_type == "Full"), None)
        parent = {"incremental": self.taken[-1] if self.taken else None}.get(kind, newest_full)
        reason = info.metadata.get("full_backup_reason", "")
        if kind == "full":
            assert info.backup_type == "Full" and not reason
        elif parent is None:
            assert info.backup_type == "Full"
            assert reason.startswith("no earlier")
        elif info.backup_type == "Full":
            # The only other way to a full here: most pages changed (a VACUUM, big writes).
            assert "pages changed" in reason, reason
        else:
            assert info.backup_type == kind.capitalize()
            assert info.metadata["parent"] == parent.path.name
            assert 0 <= info.changed_pages <= info.page_count
        event(f"{kind} backup taken as {info.backup_type}")
        self.taken.append(
            Taken(path, info.backup_type, content_digest(self.db), tuple(self.tables))
        )

    # ----------------------------------------------------------------------- the check

    @invariant()
    def every_backup_restores_to_what_was_backed_up(self) -> None:
        if self.checked == len(self.taken):
            return
        # A new backup was taken: restore every backup so far (a later backup, or the
        # page cache it wrote beside its parent, must never spoil an earlier one).
        for n, taken in enumerate(self.taken):
            target = self.scratch / f"check-{len(self.taken)}-{n}.db"
            self.scratch.mkdir(exist_ok=True)
            result = restore_backup(taken.path, target)
            assert result.success
            assert content_digest(target) == taken.digest, (n, taken.path.name)
            assert integrity(target) == ["ok"]
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
        self.checked = len(self.taken)


IncrementalBackups.TestCase.settings = settings(
    max_examples=15, stateful_step_count=12, deadline=None
)
TestIncrementalBackups = IncrementalBackups.TestCase
