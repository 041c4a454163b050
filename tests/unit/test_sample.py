"""Tests for the deterministic sample-ledger generator (real SQLite files, small N)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from dagvault import sample
from dagvault.sample import SampleStats, create_sample_ledger

N = 500
NODES = 16

Dump = dict[str, list[tuple[object, ...]]]


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path)) as conn:
        yield conn


def dump(path: Path) -> Dump:
    """Every row of every table in a stable order, for byte-for-byte comparisons."""
    with connect(path) as conn:
        return {
            "nodes": conn.execute("SELECT * FROM nodes ORDER BY node_id").fetchall(),
            "transactions": conn.execute("SELECT * FROM transactions ORDER BY id").fetchall(),
            "transaction_parents": conn.execute(
                "SELECT * FROM transaction_parents ORDER BY child_id, parent_id"
            ).fetchall(),
        }


def assert_valid_ledger(path: Path) -> None:
    """Invariants every sample ledger must satisfy, fresh or appended."""
    with connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

        ids = [row[0] for row in conn.execute("SELECT id FROM transactions ORDER BY id")]
        assert ids == list(range(1, len(ids) + 1))

        parents: dict[int, list[int]] = defaultdict(list)
        for child, parent in conn.execute("SELECT child_id, parent_id FROM transaction_parents"):
            parents[child].append(parent)
        assert 1 not in parents, "genesis must not approve anything"
        for tx_id in ids[1:]:
            approved = parents[tx_id]
            assert 1 <= len(approved) <= 2, tx_id
            assert len(set(approved)) == len(approved), tx_id
            assert all(parent < tx_id for parent in approved), tx_id

        hashes = [row[0] for row in conn.execute("SELECT tx_hash FROM transactions")]
        assert len(set(hashes)) == len(hashes)

        timestamps = [
            row[0] for row in conn.execute("SELECT timestamp FROM transactions ORDER BY id")
        ]
        assert timestamps == sorted(timestamps)
        assert timestamps[0] >= sample.GENESIS_TIMESTAMP

        # Per-sender nonces run 0, 1, 2, ... in insertion order.
        nonces: dict[str, list[int]] = defaultdict(list)
        for sender, nonce in conn.execute("SELECT sender, nonce FROM transactions ORDER BY id"):
            nonces[sender].append(nonce)
        for sequence in nonces.values():
            assert sequence == list(range(len(sequence)))

        # The trigger keeps last_seen at (or past) each validator's newest confirmation.
        stale = conn.execute(
            "SELECT COUNT(*) FROM nodes n JOIN ("
            " SELECT validator, MAX(timestamp) AS newest FROM transactions GROUP BY validator"
            ") t ON t.validator = n.node_id WHERE n.last_seen < t.newest"
        ).fetchone()[0]
        assert stale == 0


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleStats]:
    path = tmp_path_factory.mktemp("sample") / "ledger.db"
    return path, create_sample_ledger(path, N, seed=7, nodes=NODES)


def test_schema_objects_present(ledger: tuple[Path, SampleStats]) -> None:
    path, _ = ledger
    with connect(path) as conn:
        objects = {
            (kind, name)
            for kind, name in conn.execute("SELECT type, name FROM sqlite_schema")
            if not name.startswith("sqlite_")
        }
        assert {
            ("table", "nodes"),
            ("table", "transactions"),
            ("table", "transaction_parents"),
            ("view", "ledger_daily"),
        } <= objects
        assert sum(kind == "trigger" for kind, _ in objects) == 1
        columns = {
            table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in ("nodes", "transactions", "transaction_parents", "ledger_daily")
        }
        indexed = {
            (table, row[2])
            for table in ("transactions", "transaction_parents")
            for index in conn.execute(f"PRAGMA index_list({table})")
            for row in conn.execute(f"PRAGMA index_info({index[1]})")
        }
    assert columns["nodes"] == [
        "node_id",
        "public_key",
        "stake",
        "joined_at",
        "last_seen",
        "is_validator",
    ]
    assert columns["transactions"] == [
        "id",
        "tx_hash",
        "sender",
        "receiver",
        "amount",
        "fee",
        "nonce",
        "timestamp",
        "signature",
        "public_key",
        "payload",
        "validator",
    ]
    assert columns["transaction_parents"] == ["child_id", "parent_id"]
    assert columns["ledger_daily"] == ["day", "tx_count", "total_amount", "total_fee"]
    assert {
        ("transactions", "timestamp"),
        ("transactions", "sender"),
        ("transactions", "tx_hash"),
        ("transaction_parents", "parent_id"),
    } <= indexed


def test_wal_mode_and_page_size(ledger: tuple[Path, SampleStats]) -> None:
    path, _ = ledger
    with connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096


def test_counts_and_stats(ledger: tuple[Path, SampleStats]) -> None:
    path, stats = ledger
    with connect(path) as conn:
        tx_count = conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
        edge_count = conn.execute("SELECT COUNT(*) FROM transaction_parents").fetchone()[0]
        node_count = conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
        validators = conn.execute("SELECT COUNT(*) FROM nodes WHERE is_validator").fetchone()[0]
    assert (tx_count, node_count) == (N, NODES)
    assert validators >= 1
    assert N - 1 <= edge_count <= 2 * (N - 1)
    assert stats.transactions == N
    assert stats.nodes == NODES
    assert stats.edges == edge_count
    assert stats.path == str(path)
    assert stats.file_size == path.stat().st_size > 0
    assert stats.seconds > 0


def test_dag_and_row_invariants(ledger: tuple[Path, SampleStats]) -> None:
    assert_valid_ledger(ledger[0])


def test_row_shapes(ledger: tuple[Path, SampleStats]) -> None:
    path, _ = ledger
    with connect(path) as conn:
        rows = conn.execute(
            "SELECT sender, receiver, amount, fee, length(signature), length(public_key),"
            " length(payload), validator FROM transactions"
        ).fetchall()
        validators = {
            row[0] for row in conn.execute("SELECT node_id FROM nodes WHERE is_validator")
        }
        node_keys = {row[0] for row in conn.execute("SELECT public_key FROM nodes")}
        account_keys = {row[0] for row in conn.execute("SELECT public_key FROM transactions")}
        signatures = {row[0] for row in conn.execute("SELECT signature FROM transactions")}
    assert {len(key) for key in node_keys} == {1312}
    # Independent random streams: no key reuse between nodes and accounts, no repeated signature.
    assert not node_keys & account_keys
    assert len(signatures) == len(rows)
    for sender, receiver, amount, fee, sig_len, key_len, payload_len, validator in rows:
        assert sender != receiver
        assert sender.startswith("0x") and len(sender) == 42
        assert amount >= 0 and fee >= 0
        assert (sig_len, key_len) == (2420, 1312)
        assert payload_len is None or 0 <= payload_len <= 512
        assert validator in validators
    null_share = sum(row[6] is None for row in rows) / len(rows)
    assert 0.6 < null_share < 0.8


def test_tx_hash_is_sha3_of_the_other_fields(ledger: tuple[Path, SampleStats]) -> None:
    path, _ = ledger
    with connect(path) as conn:
        rows = conn.execute(
            "SELECT tx_hash, sender, receiver, amount, fee, nonce, timestamp, signature,"
            " public_key, payload, validator FROM transactions"
        ).fetchall()
    for tx_hash, *fields in rows:
        assert len(tx_hash) == 64
        assert sample._tx_hash(*fields) == tx_hash


def test_ledger_daily_view_matches_table(ledger: tuple[Path, SampleStats]) -> None:
    path, _ = ledger
    with connect(path) as conn:
        view = conn.execute(
            "SELECT SUM(tx_count), SUM(total_amount), SUM(total_fee) FROM ledger_daily"
        )
        totals = conn.execute("SELECT COUNT(*), SUM(amount), SUM(fee) FROM transactions")
        assert view.fetchone() == totals.fetchone()
        assert conn.execute("SELECT MIN(day) FROM ledger_daily").fetchone()[0] == "2026-01-01"


def test_same_seed_is_deterministic(tmp_path: Path) -> None:
    first = tmp_path / "a.db"
    second = tmp_path / "b.db"
    create_sample_ledger(first, N, seed=3, nodes=NODES)
    create_sample_ledger(second, N, seed=3, nodes=NODES)
    assert dump(first) == dump(second)


def test_different_seed_differs(tmp_path: Path) -> None:
    first = tmp_path / "a.db"
    second = tmp_path / "b.db"
    create_sample_ledger(first, N, seed=3, nodes=NODES)
    create_sample_ledger(second, N, seed=4, nodes=NODES)
    rows_first, rows_second = dump(first), dump(second)
    assert rows_first["nodes"] != rows_second["nodes"]
    assert rows_first["transactions"] != rows_second["transactions"]


def test_existing_file_without_append_raises(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    create_sample_ledger(path, 20, nodes=4)
    before = dump(path)
    with pytest.raises(FileExistsError):
        create_sample_ledger(path, 20, nodes=4)
    assert dump(path) == before


def test_append_extends_and_keeps_invariants(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    create_sample_ledger(path, N, seed=5, nodes=NODES)
    before = dump(path)
    stats = create_sample_ledger(path, 300, seed=5, append=True)
    after = dump(path)

    assert stats.transactions == N + 300
    assert stats.nodes == NODES
    assert stats.edges == len(after["transaction_parents"])
    assert after["transactions"][:N] == before["transactions"]
    assert (
        after["transaction_parents"][: len(before["transaction_parents"])]
        == (before["transaction_parents"])
    )
    assert [row[0] for row in after["transactions"][N:]] == list(range(N + 1, N + 301))
    assert_valid_ledger(path)
    # New transactions approve pre-existing ones across the append boundary.
    assert any(child > N >= parent for child, parent in after["transaction_parents"])

    # A second append must continue, not replay, the first one.
    create_sample_ledger(path, 100, seed=5, append=True)
    assert_valid_ledger(path)
    with connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0] == N + 400
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_append_is_deterministic(tmp_path: Path) -> None:
    paths = [tmp_path / "a.db", tmp_path / "b.db"]
    for path in paths:
        create_sample_ledger(path, 200, seed=9, nodes=NODES)
        create_sample_ledger(path, 150, seed=9, append=True)
    assert dump(paths[0]) == dump(paths[1])


def test_append_to_empty_ledger_starts_with_genesis(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    create_sample_ledger(path, 0, nodes=4)
    stats = create_sample_ledger(path, 50, append=True)
    assert (stats.transactions, stats.nodes) == (50, 4)
    assert_valid_ledger(path)


def test_append_requires_existing_sample_ledger(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        create_sample_ledger(tmp_path / "missing.db", 10, append=True)
    assert not (tmp_path / "missing.db").exists()

    other = tmp_path / "other.db"
    with connect(other) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
        conn.commit()
    with pytest.raises(ValueError, match="not a sample ledger"):
        create_sample_ledger(other, 10, append=True)


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        create_sample_ledger(tmp_path / "a.db", -1)
    with pytest.raises(ValueError):
        create_sample_ledger(tmp_path / "b.db", 10, nodes=0)
    assert list(tmp_path.iterdir()) == []


def test_failed_fresh_generation_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sample, "_insert_transactions", explode)
    with pytest.raises(RuntimeError, match="boom"):
        create_sample_ledger(tmp_path / "ledger.db", 10)
    assert list(tmp_path.iterdir()) == []
