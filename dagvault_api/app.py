"""The FastAPI application: routes, authentication, the envelope, errors, audit and metrics.

Operations (backup, restore, export, import, verify, cleanup) are Prefect flow runs and
answer when they finished, with their real result. Reads (list, schedule, health,
metrics) go to the core directly: they change nothing and must stay fast.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

import flows.backup
import flows.cleanup
import flows.export
import flows.restore
import flows.verify
from dagvault import db
from dagvault.backup import validate_name
from dagvault.catalog import list_backups
from dagvault.config import Settings
from dagvault.errors import BackupNotFound, ConfigError, DagvaultError
from dagvault.schedule import backup_schedule
from dagvault_api import auth
from dagvault_api.audit import AuditLog
from dagvault_api.metrics import CONTENT_TYPE, Metrics
from dagvault_api.models import (
    BackupData,
    BackupEntry,
    BackupRequest,
    CleanupRequest,
    Envelope,
    ErrorEnvelope,
    ExportData,
    ExportRequest,
    Health,
    ImportRequest,
    RestoreData,
    RestoreRequest,
    ResultData,
    Schedule,
    VerifyRequest,
)
from dagvault_api.operations import (
    ERROR_STATUSES,
    FlowRun,
    FlowRunFailed,
    Scrubber,
    http_status,
    is_quality_failure,
    run_flow,
)
from dagvault_api.paths import Area, PathRejected

# uvicorn configures this logger: unexpected errors land in the server's log.
log = logging.getLogger("uvicorn.error")

# The mutating endpoints, each audited under its action name.
ACTIONS = {
    "/backup": "backup",
    "/backup/restore": "restore",
    "/backup/export": "export",
    "/backup/import": "import",
    "/backup/verify": "verify",
    "/backup/cleanup": "cleanup",
}


@dataclass(frozen=True)
class ApiConfig:
    settings: Settings
    config_file: str | None
    base: Path  # the server's working directory: relative paths in requests resolve here
    token: str | None
    protect_reads: bool  # listening beyond loopback: reads need the token too
    audit_log: Path


class SafeJSONResponse(JSONResponse):
    """ASCII-escaped JSON: a message that quotes a request's lone surrogate still renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, hint: str | None = None, data: Any = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.hint, self.data = status, message, hint, data


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def envelope(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data, "error": None, "timestamp": _now()}


def _error_body(message: str, hint: str | None, data: Any = None) -> dict[str, Any]:
    return {"success": False, "data": data, "error": message, "hint": hint, "timestamp": _now()}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in [*ERROR_STATUSES, 405]
}


def create_app(config: ApiConfig) -> FastAPI:
    settings = config.settings
    backups = Area(settings.backup_dir, "BACKUP_DIR", config.base)
    exports = Area(settings.export_dir, "EXPORT_DIR", config.base)
    scrub = Scrubber(config.base, [settings.backup_dir, settings.export_dir])
    metrics = Metrics(
        config.base / settings.database_path, config.base / settings.backup_dir, ACTIONS.values()
    )
    audit = AuditLog(config.audit_log)
    started = time.monotonic()
    bearer = HTTPBearer(auto_error=False, description="DAGVAULT_API_TOKEN")

    app = FastAPI(
        title="dagvault",
        summary="Backup, restore and export of the DAG ledger's SQLite database",
        version="1",
        responses=ERROR_RESPONSES,
        default_response_class=SafeJSONResponse,
    )
    if config.token is None:
        # Token-less means loopback-only; refusing other Host headers stops a web page
        # from reaching the API through DNS rebinding.
        app.add_middleware(
            TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"]
        )

    def caller(request: Request) -> str:
        client = request.client
        return f"client:{client.host}" if client else "client:unknown"

    def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
        request.state.who = caller(request)
        if config.token is None:
            return
        if credentials is None or not auth.token_matches(credentials.credentials, config.token):
            request.state.denied = True
            raise ApiError(
                401,
                "Missing or wrong bearer token",
                "Send `Authorization: Bearer <DAGVAULT_API_TOKEN>`.",
            )
        request.state.who = auth.fingerprint(config.token)

    def require_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        authenticate(request, credentials)

    def read_access(request: Request) -> None:
        request.state.who = caller(request)

    reads = [Depends(require_token if config.protect_reads else read_access)]
    writes = [Depends(require_token)]

    @app.middleware("http")
    async def audit_mutations(request: Request, call_next: Callable[..., Any]) -> Response:
        """One audit line per mutating request (refused, invalid or run), after it ended."""
        status = 500  # an unexpected error escapes call_next and becomes a 500
        try:
            response: Response = await call_next(request)
            status = response.status_code
        finally:
            state = request.state
            if request.url.path in ACTIONS or getattr(state, "denied", False):
                outcome = "success" if status < 400 else "failure"
                audit.record(
                    who=getattr(state, "who", caller(request)),
                    action=ACTIONS.get(request.url.path, request.url.path),
                    request=getattr(state, "params", None),
                    result="denied" if getattr(state, "denied", False) else outcome,
                    status=status,
                    error=getattr(state, "error", None),
                    flow_run_id=getattr(state, "flow_run_id", None),
                )
        return response

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        request.state.error = exc.message
        return SafeJSONResponse(
            _error_body(exc.message, exc.hint, exc.data), status_code=exc.status, headers=headers
        )

    @app.exception_handler(DagvaultError)
    async def on_refused(request: Request, exc: DagvaultError) -> JSONResponse:
        """Bad input found by a route before any flow ran (a path outside BACKUP_DIR…)."""
        request.state.error = scrub(exc.message)
        return SafeJSONResponse(
            _error_body(scrub(exc.message), scrub(exc.hint) or None),
            status_code=http_status(exc),
        )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = [str(part) for part in error["loc"] if part not in ("body", "query")]
            problems.append(f"{'.'.join(where) or 'body'}: {error['msg']}")
        message = "Invalid request: " + "; ".join(problems)
        request.state.error = message
        return SafeJSONResponse(
            _error_body(message, "See the request schema at /docs."), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return SafeJSONResponse(
            _error_body(str(exc.detail), None), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("Unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return SafeJSONResponse(
            _error_body("Internal error; the server log has the details", None), status_code=500
        )

    def operate(request: Request, params: dict[str, Any], run: Callable[[], FlowRun]) -> FlowRun:
        """Run one operation: metrics, audit details, and its failure as an ApiError."""
        action = ACTIONS[request.url.path]
        request.state.params = params
        metrics.operations.labels(action).inc()
        try:
            with metrics.in_progress.labels(action).track_inprogress():
                outcome = run()
        except (FlowRunFailed, DagvaultError) as failure:
            metrics.errors.labels(action).inc()
            error = failure.error if isinstance(failure, FlowRunFailed) else failure
            request.state.flow_run_id = getattr(failure, "flow_run_id", None)
            if is_quality_failure(error):
                metrics.quality_failures.labels(action).inc()
            if not isinstance(error, DagvaultError):
                log.error("Unexpected failure of %s", action, exc_info=error)
                raise ApiError(500, "Internal error; the server log has the details") from None
            reports = getattr(error, "reports", None)
            raise ApiError(
                http_status(error),
                scrub(error.message),
                scrub(error.hint) or None,
                {"reports": reports} if reports is not None else None,
            ) from None
        request.state.flow_run_id = outcome.flow_run_id
        return outcome

    def common(**parameters: Any) -> dict[str, Any]:
        return {"config_file": config.config_file, **parameters}

    @app.post("/backup", dependencies=writes, response_model=Envelope[BackupData])
    def create_backup(body: BackupRequest, request: Request) -> dict[str, Any]:
        """Take a backup (full, incremental or differential), verify it, run the quality gate."""
        target = backups.confine("backup_path", body.backup_path or str(settings.backup_dir))
        directory, name = target, None
        if target != settings.backup_dir and not backups.is_directory(target):
            directory, name = target.parent, _backup_name(target.name)
        db.require_file(config.base / settings.database_path)
        params = {**body.model_dump(), "backup_path": str(target)}
        run = operate(
            request,
            params,
            lambda: run_flow(
                flows.backup.backup_flow,
                **common(
                    database_path=str(settings.database_path),
                    backup_dir=str(directory),
                    name=name,
                    description=body.description,
                    verify_after=body.verify,
                    backup_type=body.backup_type,
                    compress=body.compress,
                    quality=body.quality,
                    allow_decrease=body.allow_decrease,
                ),
            ),
        )
        info = run.result
        return envelope(
            {
                "success": True,
                "message": f"{info['backup_type']} backup created.",
                "backup_path": info["backup_path"],
                "timestamp": _now(),
                "flow_run_id": run.flow_run_id,
                "backup": info,
            }
        )

    @app.post("/backup/restore", dependencies=writes, response_model=Envelope[RestoreData])
    def restore_backup(body: RestoreRequest, request: Request) -> dict[str, Any]:
        """Restore the configured database (DATABASE_PATH) from a backup in BACKUP_DIR."""
        source = _existing(backups.confine("backup_path", body.backup_path), config.base)
        pre = (
            settings.create_pre_restore_backup
            if body.create_pre_restore_backup is None
            else body.create_pre_restore_backup
        )
        params = {"backup_path": str(source), "create_pre_restore_backup": pre}
        run = operate(
            request,
            params,
            lambda: run_flow(
                flows.restore.restore_flow,
                **common(
                    backup_path=str(source),
                    database_path=str(settings.database_path),
                    pre_restore_backup=pre,
                ),
            ),
        )
        return envelope(
            {
                "success": True,
                "message": "Database restored.",
                "backup_path": str(source),
                "create_pre_restore_backup": pre,
                "timestamp": _now(),
                "flow_run_id": run.flow_run_id,
                "restore": run.result,
            }
        )

    @app.get("/backup/list", dependencies=reads, response_model=Envelope[list[BackupEntry]])
    def list_(
        backup_dir: Annotated[str | None, Query(min_length=1, max_length=4096)] = None,
        limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> dict[str, Any]:
        """Backups of BACKUP_DIR (or a directory inside it), newest first."""
        directory = backups.confine("backup_dir", backup_dir or str(settings.backup_dir))
        entries = list_backups(config.base / directory, limit=limit)
        return envelope(
            [{**e.to_json(), "backup_path": str(directory / e.path.name)} for e in entries]
        )

    @app.post("/backup/export", dependencies=writes, response_model=Envelope[ExportData])
    def export(body: ExportRequest, request: Request) -> dict[str, Any]:
        """Export the live database (or a backup) to sql, json, csv or parquet in EXPORT_DIR."""
        out = exports.confine("export_path", body.export_path or str(settings.export_dir))
        export_dir, out_path = out, None
        if out != settings.export_dir and not exports.is_directory(out):
            export_dir, out_path = out.parent, out
        source = None
        if body.backup_path:
            source = _existing(backups.confine("backup_path", body.backup_path), config.base)
        fmt = body.format or settings.default_export_format
        params = {**body.model_dump(), "export_path": str(out), "format": fmt}
        run = operate(
            request,
            params,
            lambda: run_flow(
                flows.export.export_flow,
                **common(
                    fmt=fmt,
                    database_path=str(settings.database_path),
                    backup_path=str(source) if source else None,
                    out=str(out_path) if out_path else None,
                    export_dir=str(export_dir),
                    tables=body.tables,
                    quality=body.quality,
                ),
            ),
        )
        result = run.result
        return envelope(
            {
                "success": True,
                "message": "Database exported.",
                "export_path": result["export_path"],
                "format": result["format"],
                "timestamp": _now(),
                "flow_run_id": run.flow_run_id,
                "export": result,
            }
        )

    @app.post("/backup/import", dependencies=writes, response_model=Envelope[ResultData])
    def import_sql(body: ImportRequest, request: Request) -> dict[str, Any]:
        """Replace the database with one built from an SQL dump in EXPORT_DIR (like a restore)."""
        dump = _existing(exports.confine("sql_path", body.sql_path), config.base, "SQL dump")
        params = {**body.model_dump(), "sql_path": str(dump)}
        run = operate(
            request,
            params,
            lambda: run_flow(
                flows.export.import_sql_flow,
                **common(
                    sql_path=str(dump),
                    database_path=str(settings.database_path),
                    pre_import_backup=body.create_pre_import_backup,
                ),
            ),
        )
        return envelope(_result("Database imported.", run))

    @app.post("/backup/verify", dependencies=writes, response_model=Envelope[ResultData])
    def verify(body: VerifyRequest, request: Request) -> dict[str, Any]:
        """Verify one backup or all of BACKUP_DIR (records the outcome in each .meta)."""
        target = None
        if body.backup_path:
            target = _existing(backups.confine("backup_path", body.backup_path), config.base)
        params = {**body.model_dump(), "backup_path": str(target) if target else None}
        run = operate(
            request,
            params,
            lambda: run_flow(
                flows.verify.verify_flow,
                **common(
                    backup_path=str(target) if target else None,
                    all_backups=body.all,
                    backup_dir=str(settings.backup_dir),
                    quick=body.quick,
                    quality=body.quality,
                    allow_decrease=body.allow_decrease,
                ),
            ),
        )
        return envelope(_result("All backups valid.", run))

    @app.post("/backup/cleanup", dependencies=writes, response_model=Envelope[ResultData])
    def cleanup(body: CleanupRequest, request: Request) -> dict[str, Any]:
        """Keep the newest N backups of BACKUP_DIR (never the newest verified one)."""
        run = operate(
            request,
            body.model_dump(),
            lambda: run_flow(
                flows.cleanup.cleanup_flow,
                **common(keep=body.keep, dry_run=body.dry_run, backup_dir=str(settings.backup_dir)),
            ),
        )
        return envelope(
            _result("Dry run: nothing removed." if body.dry_run else "Cleaned up.", run)
        )

    @app.get("/backup/schedule", dependencies=reads, response_model=Envelope[Schedule])
    def schedule(
        interval_hours: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> dict[str, Any]:
        """When the next backup of the database is due (the description's BackupSchedule)."""
        plan = backup_schedule(
            config.base / settings.database_path,
            config.base / settings.backup_dir,
            interval_hours or settings.interval_hours,
        )
        return envelope({**plan.to_json(), "backup_dir": str(settings.backup_dir)})

    @app.get("/health", response_model=Envelope[Health])
    async def health() -> dict[str, Any]:
        """Liveness: answers while operations run; never touches the backups."""
        running = sum(
            int(sample.value)
            for family in metrics.in_progress.collect()
            for sample in family.samples
        )
        return envelope(
            {
                "status": "ok",
                "database_present": (config.base / settings.database_path).is_file(),
                "operations_in_progress": running,
                "uptime_seconds": round(time.monotonic() - started, 3),
            }
        )

    @app.get(
        "/metrics",
        dependencies=reads,
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    def prometheus() -> Response:
        """Prometheus text exposition format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


def _existing(path: Path, base: Path, what: str = "Backup") -> Path:
    """Fail before a flow run starts when the file named does not exist (a cheap 404)."""
    if not (base / path).is_file():
        raise BackupNotFound(
            f"{what} {path} does not exist", "GET /backup/list shows the backups there are."
        )
    return path


def _backup_name(name: str) -> str:
    try:
        return validate_name(name)
    except ConfigError as exc:
        raise PathRejected("backup_path", exc.message, exc.hint) from None


def _result(message: str, run: Any) -> dict[str, Any]:
    return {
        "success": True,
        "message": message,
        "timestamp": _now(),
        "flow_run_id": run.flow_run_id,
        "result": run.result,
    }
