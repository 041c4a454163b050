"""``export_database``: one consistent snapshot to an SQL dump or a dataset directory.

Layouts (format version 1):

- ``sql``: ``<out>.sql`` plus ``<out>.sql.manifest.json``.
- ``json``/``jsonl``/``csv``/``parquet``: a directory ``<out>/`` holding ``<table>.json``
  (one JSON array) | ``<table>.jsonl`` (JSON Lines) | ``<table>.csv`` | ``<table>.parquet``
  per table and ``manifest.json``. A directory without ``manifest.json`` is incomplete.

Everything is written under a hidden temp name, fsynced, checked (rows streamed ==
rows in the snapshot == rows read back from the file) and only then published;
a mismatch fails the export and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagvault import journal, permissions
from dagvault.backup import numbered_paths
from dagvault.checksum import sha3_256_file
from dagvault.config import EXPORT_FORMATS
from dagvault.db import quote_identifier, table_names
from dagvault.errors import ConfigError, ExportMismatch, storage_error
from dagvault.export.datasets import duckdb_connection, write_table
from dagvault.export.result import ExportResult
from dagvault.export.source import Snapshot, open_snapshot
from dagvault.export.sqldump import write_dump
from dagvault.fsio import (
    discard,
    ensure_dir,
    fsync_dir,
    publish,
    remove_stale_temp_files,
    temp_path,
    write_atomic,
)
from dagvault.safedir import HeldDir

MANIFEST_VERSION = 1


def _choose_tables(snapshot: Snapshot, requested: list[str] | None) -> list[str]:
    available = table_names(snapshot.conn)
    if not requested:
        return available
    unknown = [t for t in requested if t not in available]
    if unknown:
        raise ConfigError(
            f"No such table(s) in the database: {', '.join(unknown)}",
            f"Choose among: {', '.join(available)}",
        )
    return list(dict.fromkeys(requested))


def _check_counts(expected: dict[str, int], **observed: dict[str, int]) -> None:
    problems = [
        f"{table}: snapshot has {rows}, {what} {counts.get(table)}"
        for what, counts in observed.items()
        for table, rows in expected.items()
        if counts.get(table) != rows
    ]
    if problems:
        raise ExportMismatch(
            "Exported row counts differ from the snapshot; nothing was published: "
            + "; ".join(problems),
            "Report this as a bug with the database's schema; retry the export meanwhile.",
        )


# The values of both JSON layouts (json_rows), as the manifest states them.
_JSON_VALUES = (
    "UTF-8, RFC 8259; NULL is null; blobs as uppercase hex strings; integers exact (64-bit); "
    'reals in shortest round-trip form, ±inf as the strings "Infinity"/"-Infinity"'
)


def _manifest(fmt: str, snapshot: Snapshot, tables: dict[str, Any]) -> dict[str, Any]:
    return {
        "format_version": MANIFEST_VERSION,
        "format": fmt,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": snapshot.description,
        "encoding": {
            "parquet": "zstd; blobs binary; transactions ordered by timestamp (row groups carry "
            "min/max statistics for pruning)",
            "csv": 'RFC 4180 with a header row; NULL is an empty field, an empty string is ""; '
            "blobs as uppercase hex",
            "json": f"one JSON array of objects per table, one object per line; {_JSON_VALUES}",
            "jsonl": f"JSON Lines: one object per line; {_JSON_VALUES}",
        }[fmt]
        if fmt != "sql"
        else "SQLite SQL; load with: sqlite3 new.db < FILE",
        "tables": tables,
    }


def _export_sql(
    snapshot: Snapshot, tables: list[str], final: Path, include_schema: bool, include_data: bool
) -> tuple[dict[str, int], list[Path]]:
    temp = temp_path(final)
    try:
        with open(temp, "xb") as out:
            written = write_dump(
                snapshot.conn, out, tables, include_schema=include_schema, include_data=include_data
            )
            out.flush()
            os.fsync(out.fileno())
        if include_data:
            _check_counts({t: snapshot.row_counts[t] for t in tables}, written=written)
        checksum = sha3_256_file(temp)
        publish(temp, final)
    finally:
        discard(temp)
    manifest_file = final.with_name(final.name + ".manifest.json")
    manifest = _manifest(
        "sql",
        snapshot,
        {t: {"rows": written[t]} for t in tables},
    )
    manifest["file"] = {"name": final.name, "bytes": final.stat().st_size, "sha3_256": checksum}
    try:
        write_atomic(manifest_file, (json.dumps(manifest, indent=2) + "\n").encode())
    except BaseException:
        discard(final)  # a dump without its manifest must not look complete
        raise
    return written, [final, manifest_file]


def _export_dataset(
    snapshot: Snapshot, tables: list[str], final: Path, fmt: str, order_by: str
) -> tuple[dict[str, int], list[Path]]:
    temp = temp_path(final)  # created by _reserve
    try:
        written, streamed, read_back, checksums = {}, {}, {}, {}
        # Each finished file is hashed in the background (hashlib drops the GIL) while the
        # next table is written; the largest tables go first, so their hashing overlaps the
        # most work. Leaving the pool waits for the hashes, also on failure.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagvault-sha3") as hasher:
            duck = duckdb_connection(temp / ".spill")
            try:
                for table in _largest_first(snapshot, tables):
                    result, streamed[table], read_back[table] = write_table(
                        snapshot.conn, duck, table, temp, fmt, order_by
                    )
                    written[table] = result
                    checksums[table] = hasher.submit(sha3_256_file, result.file)
            finally:
                duck.close()
                shutil.rmtree(temp / ".spill", ignore_errors=True)
            digests = {t: checksums[t].result() for t in tables}
        _check_counts(
            {t: snapshot.row_counts[t] for t in tables}, streamed=streamed, read_back=read_back
        )
        manifest = _manifest(fmt, snapshot, {t: written[t].manifest(digests[t]) for t in tables})
        (temp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        with open(temp / "manifest.json", "rb") as fh:
            os.fsync(fh.fileno())
        fsync_dir(temp)
        os.rename(temp, final)  # replaces the empty directory that reserved the name
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    files = [final / written[t].file.name for t in tables] + [final / "manifest.json"]
    return {t: written[t].rows for t in tables}, files


def _largest_first(snapshot: Snapshot, tables: list[str]) -> list[str]:
    """``tables`` by a cheap estimate of their size (rows x columns), largest first."""

    def estimate(table: str) -> int:
        columns = snapshot.conn.execute(f"PRAGMA table_info({quote_identifier(table)})")
        return snapshot.row_counts[table] * len(columns.fetchall())

    return sorted(tables, key=estimate, reverse=True)


def _remove_stale(directory: Path) -> None:
    """Temp files and directories of exports killed mid-way, and the empty directory each
    killed dataset export had reserved for its name (``.NAME.<pid>.tmp`` reserved ``NAME``)."""
    for stale in remove_stale_temp_files(directory):
        reserved = directory / stale.name[1:].rsplit(".", 2)[0]
        if reserved.is_dir() and not reserved.is_symlink() and not any(reserved.iterdir()):
            reserved.rmdir()


def _claim(candidate: Path) -> bool:
    """Reserve a dataset export's name: its temp directory first, then the empty ``NAME``
    directory, so that a run killed in between leaves only what ``_remove_stale`` removes."""
    temp = temp_path(candidate)
    temp.mkdir()
    try:
        candidate.mkdir()
    except FileExistsError:
        temp.rmdir()
        return False
    return True


def _reserve(directory: Path, stem: str, fmt: str, out: Path | None) -> Path:
    """The final path: ``out`` as given (never an existing one) or a fresh numbered name.
    A dataset export's name is reserved with its temp directory (``_claim``)."""
    if out is not None:
        if fmt == "sql" and out.suffix != ".sql":
            out = out.with_name(out.name + ".sql")
        exists = ConfigError(
            f"Export target {out} already exists", "Choose another --out; exports never overwrite."
        )
        if out.exists():
            raise exists
        ensure_dir(out.absolute().parent)
        if fmt != "sql" and not _claim(out):
            raise exists
        return out
    ensure_dir(directory)
    template = stem + "_{ts}{n}" + (".sql" if fmt == "sql" else "")
    for candidate in numbered_paths(directory, template)(int(time.time())):
        if fmt == "sql" and not candidate.exists():
            return candidate
        if fmt != "sql" and _claim(candidate):
            return candidate
    raise ConfigError(f"No free export name in {directory}")


def export_database(
    fmt: str,
    *,
    database: Path | None = None,
    backup: Path | None = None,
    out: Path | None = None,
    export_dir: Path = Path("./exports"),
    tables: list[str] | None = None,
    include_schema: bool = True,
    include_data: bool = True,
    timestamp_column: str = "timestamp",
    busy_timeout: float = 30.0,
    backup_location: str | None = None,
    journal_dir: Path | None = None,
    key: bytes | None = None,
) -> ExportResult:
    """Export one consistent snapshot of ``database`` (live) or ``backup`` in ``fmt``
    (``backup_location``: the URL the manifest names for a backup fetched from a target;
    ``journal_dir``: the backup directory whose operations journal records the export;
    ``key``: the backup must carry a valid authentication tag, see dagvault.authtag)."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(
            f"Unknown export format {fmt!r}", f"Use one of {', '.join(EXPORT_FORMATS)}."
        )
    if (database is None) == (backup is None):
        raise ConfigError("Export either the live database or one backup (--db or --from)")
    started = time.monotonic()
    source_path = backup if backup is not None else database
    assert source_path is not None
    # Exports are created owner-only (a default ACL on EXPORT_DIR can share them: docs/security.md).
    with (
        permissions.owner_only(),
        journal.operation(journal_dir, "export"),
        open_snapshot(
            database=database,
            backup=backup,
            busy_timeout=busy_timeout,
            backup_location=backup_location,
            key=key,
        ) as snapshot,
    ):
        selected = _choose_tables(snapshot, tables)
        # Resolved once: the export is written into the directory opened here (safedir).
        directory = out.parent if out is not None else export_dir  # as named: the result too
        with HeldDir.open(directory, create=True) as held, held.naming_errors():
            target = held.io_path(out.name) if out is not None else None
            try:
                _remove_stale(held.io)
                final = _reserve(held.io, source_path.stem.split(".")[0] or "export", fmt, target)
            except OSError as exc:  # e.g. the directory was removed since it was opened
                raise storage_error(exc, "reserving an export name in", str(directory)) from exc
            try:
                if fmt == "sql":
                    counts, files = _export_sql(
                        snapshot, selected, final, include_schema, include_data
                    )
                else:
                    counts, files = _export_dataset(
                        snapshot, selected, final, fmt, timestamp_column
                    )
            except OSError as exc:
                _release(final, fmt)
                raise storage_error(exc, "writing export", str(final)) from exc
            except BaseException:
                _release(final, fmt)
                raise
            total_bytes = sum(f.stat().st_size for f in files)
    return ExportResult(
        success=True,
        export_path=str(held.shown(final)),
        format=fmt,
        manifest_path=str(held.shown(files[-1])),
        row_counts=counts,
        total_bytes=total_bytes,
        source=snapshot.description,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_seconds=round(time.monotonic() - started, 3),
        files=[str(held.shown(f)) for f in files],
    )


def _release(final: Path, fmt: str) -> None:
    """Undo the name reservation of a failed dataset export (an empty directory)."""
    if fmt != "sql" and final.is_dir() and not any(final.iterdir()):
        final.rmdir()
