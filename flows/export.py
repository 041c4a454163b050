from __future__ import annotations

from typing import Any

from prefect import flow

from dagvault.config import Settings, setting_source
from dagvault.crypto import writing_key
from dagvault.quality import gate_failure
from flows._concurrency import one_at_a_time
from flows._notify import HOOKS
from flows._settings import journal_dir, key_file, ledger_profile, resolve, staging_dir
from flows._story import run_name, told
from tasks._story import leaf
from tasks.export import encrypt_export, export, import_dump
from tasks.quality import export_quality_gate, gate_line


def _export_name(parameters: dict[str, Any], database: str) -> str:
    fmt = parameters.get("fmt") or "default-format"
    if parameters.get("backup_path"):
        return f"export {leaf(parameters['backup_path'])} → {fmt}"
    return "-".join(p for p in ("export", database, fmt) if p)


def _import_name(parameters: dict[str, Any], database: str) -> str:
    return f"import-sql {database} ← {leaf(parameters['sql_path'])}"


@flow(name="dagvault-export", flow_run_name=run_name("export", _export_name), **HOOKS)
def export_flow(
    fmt: str | None = None,
    database_path: str | None = None,
    backup_path: str | None = None,
    out: str | None = None,
    export_dir: str | None = None,
    tables: list[str] | None = None,
    config_file: str | None = None,
    quality: bool = True,
    reports_dir: str | None = None,
    encryption_key_file: str | None = None,
    encrypt: bool = False,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Export the live ledger (default) or one backup to sql/json/jsonl/csv/parquet
    (DEFAULT_EXPORT_FORMAT) under EXPORT_DIR, with a manifest; then the export gate:
    the rows counted in the written files (DuckDB; JSON object by object) must equal the
    snapshot's (GX-validated).
    A failed gate fails the run. With ``encrypt`` the data files are then encrypted
    (``<file>.enc``, AES-256-GCM; the manifest records it) and the plaintext removed."""
    settings = resolve(
        settings,
        config_file,
        database_path=database_path,
        export_dir=export_dir,
        default_export_format=fmt,
        reports_dir=reports_dir,
        encryption_key_file=encryption_key_file,
    )
    writing_key(encrypt, settings.encryption_key_file)  # no key: refuse before exporting
    with told("export", settings) as story:
        story.note(source=backup_path or str(settings.database_path))
        result = _export(settings, backup_path, out, tables, quality, encrypt)
        story.note(
            export_path=result["export_path"],
            format=result["format"],
            rows=sum(result["row_counts"].values()),
            total_bytes=result["total_bytes"],
            quality_gate=gate_line(result["quality"]) if result.get("quality") else None,
            encrypted=result.get("encrypted", False),
        )
    return result


def _export(
    settings: Settings,
    backup_path: str | None,
    out: str | None,
    tables: list[str] | None,
    quality: bool,
    encrypt: bool,
) -> dict[str, Any]:
    result = export(
        settings.default_export_format,
        None if backup_path else str(settings.database_path),
        backup_path,
        out,
        str(settings.export_dir),
        tables,
        settings.include_schema,
        settings.include_data,
        settings.timestamp_column,
        settings.busy_timeout_seconds,
        key_file(settings),
        staging_dir(settings),
        journal_dir(settings),
        settings.database_path.stem,
    )
    if quality:
        gate = export_quality_gate(
            result["export_path"],
            result["format"],
            result["row_counts"],
            str(settings.reports_dir),
            journal_dir(settings),
            settings.database_path.stem,
            settings.reports_url,
        )
        result["quality"] = gate
        if not gate["passed"]:
            raise gate_failure(gate, "the export")
    if encrypt:
        result = encrypt_export(result, key_file(settings))
    return result


@flow(name="dagvault-import-sql", flow_run_name=run_name("import-sql", _import_name), **HOOKS)
def import_sql_flow(
    sql_path: str,
    database_path: str | None = None,
    create_pre_import_backup: bool | None = None,
    config_file: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Replace the ledger with the database an SQL dump describes, safely (like restore)."""
    settings = resolve(
        settings,
        config_file,
        database_path=database_path,
        create_pre_restore_backup=create_pre_import_backup,
    )
    with told("import-sql", settings) as story, one_at_a_time(database=settings.database_path):
        story.note(sql_path=sql_path)
        result = import_dump(
            sql_path,
            str(settings.database_path),
            settings.create_pre_restore_backup,
            ledger_profile(settings),
            settings.busy_timeout_seconds,
            settings.max_restore_time,
            "--no-pre-import-backup (API: create_pre_import_backup=false)"
            if create_pre_import_backup is not None
            else setting_source("create_pre_restore_backup", config_file=config_file),
            settings.pre_restore_keep,
            journal_dir(settings),
            key_file(settings),
        )
        story.note(
            rows=sum(result["row_counts"].values()),
            pre_import_backup=result.get("pre_import_backup"),
        )
    return result
