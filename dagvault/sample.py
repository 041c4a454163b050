"""Deterministic generator of a realistic sample ledger.

The file mimics the SQLite ledger of a post-quantum DAG node: Dilithium2-sized keys and
signatures, a DAG of parent approvals, a validator table maintained by a trigger, and WAL
journaling. Backup, restore and export code can then be exercised (and benchmarked) on data
whose shape and size match production without needing a real node.

Same ``(transactions, seed, nodes)`` -> identical row contents on every run.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import struct
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

__all__ = ["SampleStats", "create_sample_ledger"]

GENESIS_TIMESTAMP = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed so output is deterministic
PUBLIC_KEY_SIZE = 1312  # Dilithium2 / ML-DSA-44 public key
SIGNATURE_SIZE = 2420  # Dilithium2 / ML-DSA-44 signature
ACCOUNT_COUNT = 4096
TX_PER_SECOND = 3.5  # mean arrival rate of the simulated network
TIP_WINDOW = 50  # parents are drawn from this many most recent transactions
PAYLOAD_PROBABILITY = 0.3
MAX_PAYLOAD_SIZE = 512
BATCH_ROWS = 1_000  # rows per executemany: bounds memory to a few MB
COMMIT_ROWS = 10_000  # rows per write transaction: lets WAL autocheckpoint keep the -wal small
VALIDATOR_RATIO = 0.85
PAGE_SIZE = 4096

_REQUIRED_TABLES = frozenset({"nodes", "transactions", "transaction_parents"})

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE nodes (
        node_id TEXT PRIMARY KEY,
        public_key BLOB NOT NULL,
        stake INTEGER NOT NULL,
        joined_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        is_validator INTEGER NOT NULL
    )""",
    """CREATE TABLE transactions (
        id INTEGER PRIMARY KEY,
        tx_hash TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        receiver TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK(amount >= 0),
        fee INTEGER NOT NULL CHECK(fee >= 0),
        nonce INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        signature BLOB NOT NULL,
        public_key BLOB NOT NULL,
        payload BLOB,
        validator TEXT REFERENCES nodes(node_id)
    )""",
    """CREATE TABLE transaction_parents (
        child_id INTEGER NOT NULL REFERENCES transactions(id),
        parent_id INTEGER NOT NULL REFERENCES transactions(id),
        PRIMARY KEY (child_id, parent_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX idx_transactions_timestamp ON transactions(timestamp)",
    "CREATE INDEX idx_transactions_sender ON transactions(sender)",
    "CREATE INDEX idx_transaction_parents_parent_id ON transaction_parents(parent_id)",
    """CREATE VIEW ledger_daily (day, tx_count, total_amount, total_fee) AS
        SELECT date(timestamp, 'unixepoch'), COUNT(*), SUM(amount), SUM(fee)
        FROM transactions
        GROUP BY date(timestamp, 'unixepoch')""",
    # Primary-key lookup only; the extra condition skips rewriting the row (and its 1.3 KB
    # key) when several transactions of the same second go to one validator.
    """CREATE TRIGGER trg_transactions_validator_last_seen
        AFTER INSERT ON transactions
        WHEN NEW.validator IS NOT NULL
        BEGIN
            UPDATE nodes SET last_seen = NEW.timestamp
            WHERE node_id = NEW.validator AND last_seen < NEW.timestamp;
        END""",
)

_TX_INSERT = (
    "INSERT INTO transactions (id, tx_hash, sender, receiver, amount, fee, nonce, timestamp,"
    " signature, public_key, payload, validator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EDGE_INSERT = "INSERT INTO transaction_parents (child_id, parent_id) VALUES (?, ?)"
_NODE_INSERT = (
    "INSERT INTO nodes (node_id, public_key, stake, joined_at, last_seen, is_validator)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

_HASH_DOMAIN = b"dagvault/tx/v1\x00"
_HASH_NUMBERS = struct.Struct(">QQQQ")  # amount, fee, nonce, timestamp
_HASH_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class SampleStats:
    """Outcome of a generation run; counts are totals of the file, also after ``append``."""

    path: str
    transactions: int
    nodes: int
    edges: int
    file_size: int
    seconds: float


@dataclass(frozen=True)
class _Accounts:
    addresses: list[str]
    public_keys: list[bytes]


@dataclass
class _Chain:
    """Mutable cursor of the DAG being extended."""

    next_id: int
    clock: float  # fractional so the Poisson arrival process does not drift when truncated
    recent: deque[int]
    nonces: list[int]  # next nonce per account index


def _length_prefixed(data: bytes) -> bytes:
    return _HASH_LENGTH.pack(len(data)) + data


def _optional(data: bytes | None) -> bytes:
    # Presence byte so that NULL and an empty value hash differently.
    return b"\x00" if data is None else b"\x01" + _length_prefixed(data)


def _tx_hash(
    sender: str,
    receiver: str,
    amount: int,
    fee: int,
    nonce: int,
    timestamp: int,
    signature: bytes,
    public_key: bytes,
    payload: bytes | None,
    validator: str | None,
) -> str:
    """SHA3-256 hex of the canonical encoding of every column except ``id`` and ``tx_hash``.

    ``id`` is a local rowid, not part of the transaction, so it is deliberately left out.
    """
    encoded = b"".join(
        (
            _HASH_DOMAIN,
            _length_prefixed(sender.encode()),
            _length_prefixed(receiver.encode()),
            _HASH_NUMBERS.pack(amount, fee, nonce, timestamp),
            _length_prefixed(signature),
            _length_prefixed(public_key),
            _optional(payload),
            _optional(None if validator is None else validator.encode()),
        )
    )
    return hashlib.sha3_256(encoded).hexdigest()


def _make_accounts(rng: random.Random) -> _Accounts:
    public_keys = [rng.randbytes(PUBLIC_KEY_SIZE) for _ in range(ACCOUNT_COUNT)]
    # Address = tail of the key hash, like Ethereum-style addresses.
    addresses = ["0x" + hashlib.sha3_256(key).hexdigest()[-40:] for key in public_keys]
    return _Accounts(addresses, public_keys)


def _insert_nodes(conn: sqlite3.Connection, rng: random.Random, count: int) -> None:
    rows: list[tuple[str, bytes, int, int, int, int]] = []
    for index in range(count):
        public_key = rng.randbytes(PUBLIC_KEY_SIZE)
        stake = int(10 ** rng.uniform(4.0, 8.0))
        joined_at = GENESIS_TIMESTAMP - rng.randrange(1, 180 * 86_400)
        last_seen = rng.randrange(joined_at, GENESIS_TIMESTAMP)
        # Node 0 always validates so that every ledger has someone to confirm transactions.
        is_validator = 1 if index == 0 or rng.random() < VALIDATOR_RATIO else 0
        node_id = hashlib.sha3_256(public_key).hexdigest()
        rows.append((node_id, public_key, stake, joined_at, last_seen, is_validator))
    conn.executemany(_NODE_INSERT, rows)


def _load_validators(conn: sqlite3.Connection) -> tuple[list[str], list[int]]:
    """Validator ids and cumulative stakes, so confirmations are stake-weighted."""
    rows = conn.execute(
        "SELECT node_id, stake FROM nodes WHERE is_validator != 0 ORDER BY node_id"
    ).fetchall()
    if not rows:
        raise ValueError("ledger has no validator nodes")
    ids = [str(node_id) for node_id, _ in rows]
    cumulative = list(accumulate(max(int(stake), 1) for _, stake in rows))
    return ids, cumulative


def _load_chain(conn: sqlite3.Connection, accounts: _Accounts) -> _Chain:
    last_id, last_ts = conn.execute("SELECT MAX(id), MAX(timestamp) FROM transactions").fetchone()
    if last_id is None:
        return _Chain(1, float(GENESIS_TIMESTAMP), deque(maxlen=TIP_WINDOW), [0] * ACCOUNT_COUNT)
    recent = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM transactions ORDER BY id DESC LIMIT ?", (TIP_WINDOW,)
        )
    ]
    # Continue each known sender's nonce sequence; unknown accounts start at 0.
    position = {address: index for index, address in enumerate(accounts.addresses)}
    nonces = [0] * ACCOUNT_COUNT
    for sender, max_nonce in conn.execute(
        "SELECT sender, MAX(nonce) FROM transactions GROUP BY sender"
    ):
        index = position.get(sender)
        if index is not None:
            nonces[index] = int(max_nonce) + 1
    return _Chain(
        next_id=int(last_id) + 1,
        clock=float(last_ts),
        recent=deque(reversed(recent), maxlen=TIP_WINDOW),
        nonces=nonces,
    )


def _insert_transactions(
    conn: sqlite3.Connection,
    rng: random.Random,
    accounts: _Accounts,
    validators: Sequence[str],
    cumulative_stake: Sequence[int],
    chain: _Chain,
    count: int,
) -> None:
    """Append ``count`` transactions to the DAG in bounded batches."""
    # Bound methods in locals: this loop runs once per row and dominates generation time.
    rand = rng.random
    randrange = rng.randrange
    randbytes = rng.randbytes
    expovariate = rng.expovariate
    addresses = accounts.addresses
    public_keys = accounts.public_keys
    nonces = chain.nonces
    recent = chain.recent
    total_stake = cumulative_stake[-1]
    tx_rows: list[tuple[object, ...]] = []
    edge_rows: list[tuple[int, int]] = []

    def flush() -> None:
        # Transactions first: parent rows reference them.
        conn.executemany(_TX_INSERT, tx_rows)
        conn.executemany(_EDGE_INSERT, edge_rows)
        tx_rows.clear()
        edge_rows.clear()

    conn.execute("BEGIN")
    try:
        for done in range(1, count + 1):
            tx_id = chain.next_id
            chain.clock += expovariate(TX_PER_SECOND)
            timestamp = int(chain.clock)
            # Squaring skews activity towards low indices: a few busy accounts, a long tail.
            sender_index = int(ACCOUNT_COUNT * rand() * rand())
            receiver_index = (sender_index + 1 + randrange(ACCOUNT_COUNT - 1)) % ACCOUNT_COUNT
            nonce = nonces[sender_index]
            nonces[sender_index] = nonce + 1
            if rand() < PAYLOAD_PROBABILITY:
                payload: bytes | None = randbytes(randrange(MAX_PAYLOAD_SIZE + 1))
                # Some payload transactions only carry data.
                amount = 0 if rand() < 0.25 else int(10 ** (2.0 + 10.0 * rand()))
            else:
                payload = None
                amount = int(10 ** (2.0 + 10.0 * rand()))
            fee = 100 + 2 * (len(payload) if payload is not None else 0) + randrange(1_000)
            validator = validators[bisect_right(cumulative_stake, randrange(total_stake))]
            signature = randbytes(SIGNATURE_SIZE)
            sender = addresses[sender_index]
            receiver = addresses[receiver_index]
            public_key = public_keys[sender_index]
            tx_hash = _tx_hash(
                sender,
                receiver,
                amount,
                fee,
                nonce,
                timestamp,
                signature,
                public_key,
                payload,
                validator,
            )
            tx_rows.append(
                (
                    tx_id,
                    tx_hash,
                    sender,
                    receiver,
                    amount,
                    fee,
                    nonce,
                    timestamp,
                    signature,
                    public_key,
                    payload,
                    validator,
                )
            )
            window = len(recent)
            if window:  # only the genesis transaction has no parents
                # Squared uniform favours the newest transactions, i.e. the likely tips.
                first = recent[-1 - int(window * rand() * rand())]
                edge_rows.append((tx_id, first))
                if window > 1 and rand() < 0.65:
                    second = first
                    while second == first:
                        second = recent[-1 - int(window * rand() * rand())]
                    edge_rows.append((tx_id, second))
            recent.append(tx_id)
            chain.next_id = tx_id + 1
            if len(tx_rows) >= BATCH_ROWS:
                flush()
            if done % COMMIT_ROWS == 0:
                conn.execute("COMMIT")
                conn.execute("BEGIN")
        flush()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _configure(conn: sqlite3.Connection, *, fresh: bool) -> None:
    if fresh:
        # Must precede the first table; it cannot change once the file is in WAL mode.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not switch ledger to WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")  # cheap PK probes; catches broken parent edges
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB keeps index pages hot, memory still flat
    conn.execute("PRAGMA temp_store=MEMORY")


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def create_sample_ledger(
    path: str | os.PathLike[str],
    transactions: int,
    *,
    seed: int = 42,
    nodes: int = 64,
    append: bool = False,
) -> SampleStats:
    """Create (or with ``append=True`` extend) a deterministic sample ledger at ``path``.

    Without ``append`` the file must not exist (``FileExistsError``); ``nodes`` validator
    rows are created and ``transactions`` rows form a DAG rooted at one genesis transaction.

    With ``append`` the file must be an existing sample ledger (``FileNotFoundError`` /
    ``ValueError`` otherwise); ``transactions`` new rows continue its ids, timestamps and
    nonces and approve recent (possibly pre-existing) transactions. ``nodes`` is ignored
    because the validator set already exists. Pass the original ``seed`` to keep the same
    account pool; the appended rows are deterministic for a given ledger and seed.
    Appends are committed in chunks, so an interrupted append leaves a valid, shorter DAG.

    The returned counts are totals of the file, not only the rows added by this call.
    """
    if transactions < 0:
        raise ValueError(f"transactions must be >= 0, got {transactions}")
    if not append and nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    target = Path(path)
    started = time.perf_counter()
    # The account pool is the first thing drawn from ``Random(seed)``, so an append run with
    # the same seed recreates exactly the accounts (and nonce owners) of the original ledger.
    rng = random.Random(seed)
    accounts = _make_accounts(rng)

    if append:
        if not target.is_file():
            raise FileNotFoundError(f"no ledger to append to: {target}")
    else:
        # Exclusive create is atomic, so two concurrent callers cannot both "win".
        with open(target, "xb"):
            pass

    try:
        with closing(sqlite3.connect(target, isolation_level=None)) as conn:
            _configure(conn, fresh=not append)
            if append:
                tables = {
                    row[0] for row in conn.execute("SELECT name FROM sqlite_schema")
                } & _REQUIRED_TABLES
                if tables != _REQUIRED_TABLES:
                    missing = ", ".join(sorted(_REQUIRED_TABLES - tables))
                    raise ValueError(f"{target} is not a sample ledger (missing: {missing})")
                chain = _load_chain(conn, accounts)
                # A distinct stream per append point: appending twice must not replay the
                # same signatures and payloads.
                rng = random.Random(f"dagvault-sample-append:{seed}:{chain.next_id}")
            else:
                conn.execute("BEGIN")
                for statement in SCHEMA:
                    conn.execute(statement)
                _insert_nodes(conn, rng, nodes)
                conn.execute("COMMIT")
                chain = _load_chain(conn, accounts)
            validators, cumulative_stake = _load_validators(conn)
            _insert_transactions(
                conn, rng, accounts, validators, cumulative_stake, chain, transactions
            )
            total_tx, total_edges, total_nodes = conn.execute(
                "SELECT (SELECT COUNT(*) FROM transactions),"
                " (SELECT COUNT(*) FROM transaction_parents),"
                " (SELECT COUNT(*) FROM nodes)"
            ).fetchone()
            # Fold the WAL into the main file so file_size reflects the whole ledger.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        if not append:
            _remove_database(target)  # never leave a half-built fresh ledger behind
        raise

    return SampleStats(
        path=os.fspath(target),
        transactions=int(total_tx),
        nodes=int(total_nodes),
        edges=int(total_edges),
        file_size=target.stat().st_size,
        seconds=time.perf_counter() - started,
    )
