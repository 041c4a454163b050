"""Which field of an edited sidecar is wrong.

A ``meta_checksum`` that no longer matches proves that *some* field of the ``.meta`` was
changed after it was written, not which one. What can name it: the data file (its size,
SHA3-256, name, format and row counts) and the fields that must agree with each other
(``timestamp`` and ``created_at`` are one moment, also written into the file name; the
totals are row counts of the ledger's tables). The backup stays refused either way:
this only tells the operator what to look at.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from dagvault.catalog import timestamp_in_name
from dagvault.checksum import sha3_256_file
from dagvault.compress import is_compressed
from dagvault.db import open_database, row_counts
from dagvault.errors import DagvaultError

_SQLITE_HEADER = b"SQLite format 3\x00"
# What neither the data nor the other fields can vouch for.
_UNCHECKABLE = "database_path, metadata.description, verification, quality"


def _moment(document: dict[str, Any]) -> list[str]:
    timestamp, created_at = document["timestamp"], document["created_at"]
    try:
        created = int(datetime.fromisoformat(created_at).timestamp())
    except ValueError:
        return [f"field 'created_at' ({created_at!r}) is not an ISO 8601 time"]
    if created == timestamp:
        return []
    named = timestamp_in_name(Path(document["backup_path"]).name)
    if named == created:
        return [f"field 'timestamp' says {timestamp}, but the backup was taken at {created}"]
    if named == timestamp:
        return [f"field 'created_at' says {created_at}, but the backup was taken at {timestamp}"]
    return [f"fields 'timestamp' ({timestamp}) and 'created_at' ({created_at}) disagree"]


def _totals(document: dict[str, Any], counts: dict[str, int]) -> list[str]:
    """A total is the row count of one of the backup's tables (0 when the ledger table is
    missing); the table's name is in the config, not in the sidecar, so any table fits."""
    return [
        f"field {key!r} says {document[key]}, which is the row count of no table "
        f"(row counts: {counts})"
        for key in ("total_transactions", "total_nodes")
        if document[key] != 0 and document[key] not in counts.values()
    ]


def _data(path: Path, document: dict[str, Any]) -> tuple[list[str], dict[str, int] | None]:
    """What the data file contradicts, and its row counts when it is a readable full
    SQLite file (else None)."""
    found: list[str] = []
    if Path(document["backup_path"]).name != path.name:
        found.append(f"field 'backup_path' names {Path(document['backup_path']).name}")
    size = path.stat().st_size
    if size != document["file_size"]:
        found.append(f"field 'file_size' says {document['file_size']}, the file has {size} bytes")
    actual = sha3_256_file(path)
    if actual != document["checksum"]:
        found.append(f"field 'checksum' says {document['checksum']}, the file's is {actual}")
    compressed = is_compressed(path)
    if compressed != document["compression_enabled"]:
        found.append(
            f"field 'compression_enabled' says {str(document['compression_enabled']).lower()}, "
            f"the file is {'' if compressed else 'not '}compressed"
        )
    if compressed:
        return found, None
    with open(path, "rb") as fh:
        plain = fh.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    if plain != (document["backup_type"] == "Full"):
        found.append(
            f"field 'backup_type' says {document['backup_type']}, the file is "
            f"{'a full SQLite database' if plain else 'a delta'}"
        )
        return found, None
    counts = _row_counts(path) if plain else None
    expected = document.get("row_counts", {})
    if counts is not None:
        found += [
            f"row_counts says {table}: {expected.get(table)}, the file has {counts.get(table)}"
            for table in sorted(set(counts) | set(expected))
            if counts.get(table) != expected.get(table)
        ]
    return found, counts


def _row_counts(path: Path) -> dict[str, int] | None:
    try:
        conn = open_database(path, mode="ro", what="backup")
    except DagvaultError:
        return None  # a damaged file: the checksum has already said so
    try:
        return row_counts(conn)
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()


def edited_fields(path: Path, document: dict[str, Any]) -> str:
    """What disagrees in the well-formed sidecar ``document`` of the data file ``path``."""
    found, counts = _data(path, document)
    recorded = document.get("row_counts", {})
    found = _moment(document) + _totals(document, recorded if counts is None else counts) + found
    if found:
        return "; ".join(found)
    return f"no checkable field disagrees, so a field such as {_UNCHECKABLE} was edited"
