"""The operations: each a Prefect flow run that answers when it finished, with its result.

Paths are confined first (400), named files must exist (404): both before a flow run
starts, so refused requests cost nothing and leave no run behind.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from typing import Any

from fastapi import APIRouter, Request
from fastapi.params import Depends

from dagvault import db
from dagvault.operations import BackupOptions, RestoreOptions
from dagvault.operations.export import ExportOptions
from dagvault.operations.retention import CleanupOptions
from dagvault.operations.verify import VerifyOptions
from dagvault_api.export_paths import export_prefix, fresh_export
from dagvault_api.models import (
    BackupData,
    BackupRequest,
    Envelope,
    ExportData,
    ExportRequest,
    ImportRequest,
    OperationData,
    RestoreData,
)
from dagvault_api.service import Service, backup_name, envelope


def operations_router(service: Service, writes: list[Depends]) -> APIRouter:
    router = APIRouter(dependencies=writes)
    settings = service.settings
    backups, exports = service.backups, service.exports

    @router.post("/backup", response_model=Envelope[BackupData])
    def create_backup(body: BackupRequest, request: Request) -> dict[str, Any]:
        """Take a backup (full, incremental or differential), verify it, run the quality gate.
        The description's body: {"backup_path": "./backups/blockchain", "description": "…"}."""
        target = backups.confine("backup_path", body.backup_path or str(settings.backup_dir))
        directory, name = target, None
        if target != settings.backup_dir and not backups.is_directory(target):
            directory, name = target.parent, backup_name(target.name)
        db.require_file(service.local(settings.database_path))
        data = service.run(
            request,
            {**body.model_dump(), "backup_path": str(target)},
            "backup",
            lambda info: f"{info['backup_type']} backup created.",
            BackupOptions(**body.model_dump(exclude={"backup_path"})),
            database_path=str(settings.database_path),
            backup_dir=str(directory),
            name=name,
        )
        return envelope({**data, "backup_path": data["result"]["backup_path"]})

    @router.post("/backup/restore", response_model=Envelope[RestoreData])
    def restore_backup(body: RestoreOptions, request: Request) -> dict[str, Any]:
        """Restore the configured database (DATABASE_PATH) from a backup in BACKUP_DIR:
        verified first, with a pre-restore backup unless create_pre_restore_backup=false."""
        source = service.existing(backups.confine("backup_path", body.backup_path))
        options = body.model_copy(update={"backup_path": str(source)})
        pre = body.create_pre_restore_backup
        params = {
            **options.model_dump(),
            "create_pre_restore_backup": settings.create_pre_restore_backup if pre is None else pre,
        }
        data = service.run(
            request,
            params,
            "restore",
            "Database restored.",
            options,
            database_path=str(settings.database_path),
        )
        return envelope({**data, **params})

    @router.post("/backup/export", response_model=Envelope[ExportData])
    def export(body: ExportRequest, request: Request) -> dict[str, Any]:
        """Export the live database (or a backup) to sql, json, jsonl, csv or parquet in
        EXPORT_DIR: every request writes a new export, `<export_path>_<unix-seconds>` (see
        docs/http-api.md)."""
        out = exports.confine("export_path", body.export_path or str(settings.export_dir))
        source = None
        if body.backup_path:
            source = service.existing(backups.confine("backup_path", body.backup_path))
        fmt = body.fmt or settings.default_export_format
        prefix = export_prefix(
            out,
            service.local(out),
            fmt,
            str(source or settings.database_path),
            root=out == settings.export_dir,
        )
        options = ExportOptions(
            **body.model_dump(exclude={"export_path"}),
        ).model_copy(update={"fmt": fmt, "backup_path": str(source) if source else None})
        with fresh_export(prefix, fmt, service.config.base) as target:
            data = service.run(
                request,
                {**body.model_dump(by_alias=True), "export_path": str(target), "format": fmt},
                "export",
                "Database exported.",
                options,
                database_path=str(settings.database_path),
                out=str(target),
                export_dir=str(target.parent),
            )
        return envelope({**data, "export_path": data["result"]["export_path"], "format": fmt})

    @router.post("/backup/import", response_model=Envelope[OperationData])
    def import_sql(body: ImportRequest, request: Request) -> dict[str, Any]:
        """Replace the database with one built from an SQL dump in EXPORT_DIR (like a restore)."""
        dump = service.existing(exports.confine("sql_path", body.sql_path), "SQL dump")
        data = service.run(
            request,
            {**body.model_dump(), "sql_path": str(dump)},
            "import-sql",
            "Database imported.",
            sql_path=str(dump),
            database_path=str(settings.database_path),
            pre_import_backup=body.create_pre_import_backup,
        )
        return envelope(data)

    @router.post("/backup/verify", response_model=Envelope[OperationData])
    def verify(body: VerifyOptions, request: Request) -> dict[str, Any]:
        """Verify one backup or all of BACKUP_DIR (the outcome is recorded in each .meta)."""
        options = body
        if body.backup_path:
            target = service.existing(backups.confine("backup_path", body.backup_path))
            options = body.model_copy(update={"backup_path": str(target)})
        data = service.run(
            request,
            options.model_dump(by_alias=True),
            "verify",
            "Every backup checked is valid.",
            options,
        )
        return envelope(data)

    @router.post("/backup/cleanup", response_model=Envelope[OperationData])
    def cleanup(body: CleanupOptions, request: Request) -> dict[str, Any]:
        """Keep the newest N backups of BACKUP_DIR (never the newest verified one)."""
        data = service.run(
            request,
            body.model_dump(),
            "cleanup",
            "Dry run: nothing was removed." if body.dry_run else "Old backups removed.",
            body,
        )
        return envelope(data)

    return router
