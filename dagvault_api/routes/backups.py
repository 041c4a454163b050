"""The backups: take, restore, verify, clean up (each a flow run, with the token) and list
and schedule (reads, straight from the core: they change nothing and stay fast while an
operation runs).

Paths are confined first (400), named files must exist (404): both before a flow run
starts, so refused requests cost nothing and leave no run behind.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.params import Depends

from dagvault import db
from dagvault.catalog import list_backups, list_with_pre_restore
from dagvault.operations import BackupOptions, BackupRecord, RestoreOptions
from dagvault.operations.common import MAX_PATH_CHARS
from dagvault.operations.retention import CleanupOptions
from dagvault.operations.verify import VerifyOptions
from dagvault.recovery import listing_fields, point_at, recovery_points
from dagvault.schedule import backup_schedule
from dagvault_api.models import (
    BackupData,
    BackupRequest,
    CleanupData,
    Envelope,
    RestoreData,
    Schedule,
    VerifyData,
)
from dagvault_api.service import Service, backup_name, envelope


def backups_router(service: Service, writes: list[Depends], reads: list[Depends]) -> APIRouter:
    router = APIRouter()
    settings = service.settings
    backups = service.backups

    @router.post("/backup", response_model=Envelope[BackupData], dependencies=writes)
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

    @router.post("/backup/restore", response_model=Envelope[RestoreData], dependencies=writes)
    def restore_backup(body: RestoreOptions, request: Request) -> dict[str, Any]:
        """Restore the configured database (DATABASE_PATH) from a backup in BACKUP_DIR, or
        (``at``) from the newest recovery point of BACKUP_DIR at or before that time:
        verified first, with a pre-restore backup unless create_pre_restore_backup=false."""
        if body.at is not None:
            # Before a flow run: a time outside the window is a 400 naming the window.
            directory = backups.confine("backup_dir", str(settings.backup_dir))
            point_at(list_backups(service.local(directory)), body.at)
            options = body
        else:
            source = service.existing(backups.confine("backup_path", body.backup_path or ""))
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
        # With ``at``, the backup restored is the one the flow chose.
        chosen = data["result"]["backup_info"]["backup_path"] if body.at else None
        return envelope({**data, **params, "backup_path": chosen or params["backup_path"]})

    @router.post("/backup/verify", response_model=Envelope[VerifyData], dependencies=writes)
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

    @router.post("/backup/cleanup", response_model=Envelope[CleanupData], dependencies=writes)
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

    @router.get("/backup/list", dependencies=reads, response_model=Envelope[list[BackupRecord]])
    def list_(
        backup_dir: Annotated[str | None, Query(min_length=1, max_length=MAX_PATH_CHARS)] = None,
        limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> dict[str, Any]:
        """Backups of BACKUP_DIR (or a directory inside it) and DATABASE_PATH's pre-restore
        backups (``kind``: backup / pre-restore), newest first, each with its recovery point
        (``recovery_point_at``) and the window of them all (``recovery_window``)."""
        directory = backups.confine("backup_dir", backup_dir or str(settings.backup_dir))
        database = settings.database_path
        local = service.local(directory)
        every = list_with_pre_restore(local, service.local(database))
        recovery = listing_fields(recovery_points(every))
        # Paths in their configured spelling, never more of the filesystem.
        return envelope(
            [
                {
                    **e.to_json(),
                    **recovery(e),
                    "backup_path": str(
                        (directory if e.path.parent == local else database.parent) / e.path.name
                    ),
                }
                for e in every[:limit]
            ]
        )

    @router.get("/backup/schedule", dependencies=reads, response_model=Envelope[Schedule])
    def schedule(
        interval_hours: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> dict[str, Any]:
        """When the next backup of the database is due (the description's BackupSchedule)."""
        plan = backup_schedule(
            service.local(settings.database_path),
            service.local(settings.backup_dir),
            interval_hours or settings.interval_hours,
        )
        return envelope({**plan.to_json(), "backup_dir": str(settings.backup_dir)})

    return router
