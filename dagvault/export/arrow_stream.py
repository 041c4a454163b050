"""SQLite tables as streams of Arrow record batches (memory flat in table size).

SQLite types values, not columns, so each column's Arrow type comes from the
storage classes it actually holds (one aggregate scan per table, which reads
record headers, not blob contents): integer → int64, real (or integer and real)
→ float64, text → string, blob → binary; a column mixing text or blobs with
other classes becomes string (numbers as their SQL text, blobs as hex) and is
flagged in the manifest. An all-NULL column takes its declared affinity.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from dagvault.db import quote_identifier

# At most this many rows and about this many bytes per record batch: a ledger row carries
# ~4 KB of signature and key, so a batch is ~16 MB: large enough for DuckDB to work
# efficiently, small enough that peak memory stays far below the 500 MB budget. The byte
# bound keeps it so for wider rows (20 KB signatures, MB-sized payloads): DuckDB works on
# a batch at a time, so 4096 rows of 20 KB blobs (80 MB, doubled by CSV's hex) exceeded
# its memory limit. The first batch is small; later ones are sized by the rows seen.
BATCH_ROWS = 4096
BATCH_BYTES = 16 * 1024 * 1024
FIRST_BATCH_ROWS = 64
# Batches read ahead by the producer thread (reading SQLite and building Arrow arrays
# overlaps DuckDB encoding and compressing the previous batch; bounded memory).
PREFETCH_BATCHES = 2

_BY_CLASSES: dict[frozenset[str], pa.DataType] = {
    frozenset({"integer"}): pa.int64(),
    frozenset({"real"}): pa.float64(),
    frozenset({"integer", "real"}): pa.float64(),
    frozenset({"text"}): pa.string(),
    frozenset({"blob"}): pa.binary(),
}


def _affinity_type(declared: str) -> pa.DataType:
    # SQLite's affinity rules (https://sqlite.org/datatype3.html, section 3.1).
    upper = declared.upper()
    if "INT" in upper:
        return pa.int64()
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in upper or not upper:
        return pa.binary()
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    return pa.string()


@dataclass(frozen=True)
class Column:
    name: str
    declared_type: str
    arrow_type: pa.DataType
    storage_classes: tuple[str, ...]

    @property
    def coerced(self) -> bool:
        return frozenset(self.storage_classes) not in _BY_CLASSES and bool(self.storage_classes)


def table_columns(conn: sqlite3.Connection, table: str) -> list[Column]:
    info = conn.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
    names = [row[1] for row in info]
    if not names:
        return []
    probes = ", ".join(f"group_concat(DISTINCT typeof({quote_identifier(n)}))" for n in names)
    observed = conn.execute(f"SELECT {probes} FROM {quote_identifier(table)}").fetchone()
    columns = []
    for row, classes_text in zip(info, observed, strict=True):
        classes = tuple(sorted(c for c in (classes_text or "").split(",") if c and c != "null"))
        if not classes:
            arrow_type = _affinity_type(row[2] or "")
        else:
            arrow_type = _BY_CLASSES.get(frozenset(classes), pa.string())
        columns.append(Column(row[1], row[2] or "", arrow_type, classes))
    return columns


def sql_text(value: object) -> str | None:
    """A value of a column coerced to text: numbers as their SQL text, blobs as uppercase hex."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex().upper()
    return repr(value) if isinstance(value, float) else str(value)


def _converter(column: Column) -> Callable[[tuple[object, ...]], pa.Array]:
    if column.coerced:
        return lambda values: pa.array([sql_text(v) for v in values], type=pa.string())
    if pa.types.is_floating(column.arrow_type):
        return lambda values: pa.array(
            [float(v) if v is not None else None for v in values], type=pa.float64()
        )
    return lambda values: pa.array(values, type=column.arrow_type)


def select_sql(table: str, columns: list[Column], order_by: str | None) -> str:
    """The query that streams ``table``'s ``columns`` (ordered by ``order_by`` when given)."""
    select = ", ".join(quote_identifier(c.name) for c in columns)
    sql = f"SELECT {select} FROM {quote_identifier(table)}"
    return sql + f" ORDER BY {quote_identifier(order_by)}" if order_by else sql


def arrow_schema(columns: list[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])


class _Prefetch:
    """Iterate ``source`` in a producer thread, at most ``depth`` items ahead of the consumer.

    ``close()`` stops the producer and waits for it, so that nothing touches the SQLite
    connection once the caller moves on (also when the consumer gave up half-way).
    """

    _END = object()

    def __init__(self, source: Iterator[pa.RecordBatch], depth: int) -> None:
        self._source = source
        self._slots: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = False

    def _offer(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for batch in self._source:
                if not self._offer(batch):
                    return
            self._offer(self._END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._offer(exc)

    def __iter__(self) -> _Prefetch:
        return self

    def __next__(self) -> pa.RecordBatch:
        if self._done:
            raise StopIteration
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._produce, name="dagvault-export-reader", daemon=True
            )
            self._thread.start()
        item = self._slots.get()
        if item is self._END:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        close_source = getattr(self._source, "close", None)
        if close_source is not None:
            close_source()


@contextlib.contextmanager
def record_batches(
    conn: sqlite3.Connection,
    table: str,
    columns: list[Column],
    order_by: str | None,
    counter: list[int],
) -> Iterator[pa.RecordBatchReader]:
    """Stream ``table`` as record batches; ``counter[0]`` counts the rows streamed.

    The batches are produced by a reader thread; leaving the context stops it.
    """
    schema = arrow_schema(columns)
    converters = [_converter(c) for c in columns]
    sql = select_sql(table, columns, order_by)

    def batches() -> Iterator[pa.RecordBatch]:
        cursor = conn.execute(sql)
        size = FIRST_BATCH_ROWS
        try:
            while rows := cursor.fetchmany(size):
                counter[0] += len(rows)
                values = list(zip(*rows, strict=True))
                batch = pa.record_batch(
                    [convert(col) for convert, col in zip(converters, values, strict=True)],
                    schema=schema,
                )
                row_bytes = max(1, batch.nbytes // len(rows))
                size = max(1, min(BATCH_ROWS, BATCH_BYTES // row_bytes))
                yield batch
        finally:
            cursor.close()

    stream = _Prefetch(batches(), PREFETCH_BATCHES)
    try:
        yield pa.RecordBatchReader.from_batches(schema, stream)
    finally:
        stream.close()
