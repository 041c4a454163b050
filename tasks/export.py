from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from dagvault.crypto import load_key, require_key
from dagvault.export import export_database
from dagvault.export.seal import seal_export
from dagvault.importer import import_sql
from dagvault.ledger import LedgerProfile
from dagvault.retention import DEFAULT_PRE_RESTORE_KEEP
from dagvault.storage.backup_store import stored_backup
from tasks._artifacts import create_table_artifact
from tasks._runtime import artifact_key, task_options
from tasks._story import cell, leaf, step


def _export_name(parameters: dict[str, Any]) -> str:
    source = parameters.get("backup_path") or parameters.get("database_path")
    return f"export {leaf(source)} → {parameters['fmt']}"


@task(task_run_name=_export_name, **task_options())
def export(
    fmt: str,
    database_path: str | None,
    backup_path: str | None,
    out: str | None,
    export_dir: str,
    tables: list[str] | None,
    include_schema: bool,
    include_data: bool,
    timestamp_column: str,
    busy_timeout: float,
    key_file: str | None = None,
    staging_dir: str | None = None,
    journal_dir: str | None = None,
    database: str = "",
) -> dict[str, Any]:
    """Export one consistent snapshot (of ``database``: the ledger's name, for the artifact's
    key); row counts are checked against the snapshot. A
    backup at a storage target (a URL) is fetched into ``staging_dir`` first. The export
    is recorded in the operations journal of ``journal_dir`` (BACKUP_DIR)."""
    options: dict[str, Any] = {
        "out": Path(out) if out else None,
        "export_dir": Path(export_dir),
        "tables": tables,
        "include_schema": include_schema,
        "include_data": include_data,
        "timestamp_column": timestamp_column,
        "busy_timeout": busy_timeout,
        "journal_dir": Path(journal_dir) if journal_dir else None,
    }
    # A backup is authenticated when a key is configured, as for verify and restore.
    options["key"] = load_key(Path(key_file) if key_file else None)
    if backup_path:
        backup = stored_backup(backup_path)
        with backup.local_copy(
            key_file=Path(key_file) if key_file else None,
            staging=Path(staging_dir) if staging_dir else None,
        ) as local:
            result = export_database(fmt, backup=local, backup_location=backup.location, **options)
    else:
        result = export_database(
            fmt, database=Path(database_path) if database_path else None, **options
        )
    rows = sum(result.row_counts.values())
    size = cell(result.total_bytes, "bytes")
    step(
        "exported %s rows of %d tables as %s (%s) to %s",
        f"{rows:,}",
        len(result.row_counts),
        fmt,
        size,
        result.export_path,
    )
    create_table_artifact(
        key=artifact_key("export", fmt, database),
        table=[
            {"table": table, "rows": cell(count), "format": fmt}
            for table, count in result.row_counts.items()
        ],
        description=f"Export to {result.export_path} ({size}); manifest {result.manifest_path}",
    )
    return result.to_json()


@task(task_run_name="encrypt-export", **task_options())
def encrypt_export(result: dict[str, Any], key_file: str | None) -> dict[str, Any]:
    """Encrypt the data files of a finished, gated export (``export --encrypt``)."""
    key = require_key(load_key(Path(key_file) if key_file else None), "export --encrypt")
    files = [Path(f) for f in result["files"]]
    manifest = Path(result["manifest_path"])
    sealed = seal_export([f for f in files if f != manifest], manifest, key)
    return {
        **result,
        "files": [str(f) for f in sealed],
        "total_bytes": sum(f.stat().st_size for f in sealed),
        "encrypted": True,
    }


def _import_name(parameters: dict[str, Any]) -> str:
    return f"import-sql {leaf(parameters['database_path'])} ← {leaf(parameters['sql_path'])}"


@task(task_run_name=_import_name, **task_options())
def import_dump(
    sql_path: str,
    database_path: str,
    pre_import_backup: bool,
    profile: LedgerProfile,
    busy_timeout: float,
    max_seconds: float,
    pre_import_off_by: str = "the caller",
    pre_restore_keep: int = DEFAULT_PRE_RESTORE_KEEP,
    journal_dir: str | None = None,
    key_file: str | None = None,
) -> dict[str, Any]:
    """Build a database from an SQL dump, check it, and swap it in like a restore (with a
    key configured, the pre-import backup carries its authentication tag)."""
    result = import_sql(
        Path(sql_path),
        Path(database_path),
        pre_import_backup=pre_import_backup,
        pre_import_off_by=pre_import_off_by,
        profile=profile,
        busy_timeout=busy_timeout,
        max_seconds=max_seconds,
        pre_restore_keep=pre_restore_keep,
        journal_dir=Path(journal_dir) if journal_dir else None,
        key=load_key(Path(key_file) if key_file else None),
    )
    step(
        "imported %s into %s: %s rows of %d tables",
        leaf(sql_path),
        leaf(database_path),
        f"{sum(result.row_counts.values()):,}",
        len(result.row_counts),
    )
    create_table_artifact(
        key=artifact_key("import", Path(database_path).stem),
        table=[{"table": t, "rows": cell(n)} for t, n in result.row_counts.items()],
        description=f"Imported {sql_path} into {database_path}; pre-import backup "
        f"{result.pre_import_backup or 'none'}",
    )
    return result.to_json()
