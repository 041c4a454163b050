"""The exports: export the ledger or a backup, import an SQL dump (flow runs, with the token)."""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from typing import Any

from fastapi import APIRouter, Request
from fastapi.params import Depends

from dagvault.operations.export import ExportOptions
from dagvault.operations.restore import ImportOptions
from dagvault_api.export_paths import export_prefix, fresh_export
from dagvault_api.models import Envelope, ExportData, ExportRequest, ImportData
from dagvault_api.service import Service, envelope


def exports_router(service: Service, writes: list[Depends]) -> APIRouter:
    router = APIRouter(dependencies=writes)
    settings = service.settings
    backups, exports = service.backups, service.exports

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

    @router.post("/backup/import", response_model=Envelope[ImportData])
    def import_sql(body: ImportOptions, request: Request) -> dict[str, Any]:
        """Replace the database with one built from an SQL dump in EXPORT_DIR (like a restore)."""
        dump = service.existing(exports.confine("sql_path", body.sql_path), "SQL dump")
        options = body.model_copy(update={"sql_path": str(dump)})
        data = service.run(
            request,
            options.model_dump(),
            "import-sql",
            "Database imported.",
            options,
            database_path=str(settings.database_path),
        )
        return envelope(data)

    return router
