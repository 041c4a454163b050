"""The FastAPI application: authentication, errors as envelopes, the audit middleware, and
the reads (list, schedule, health, metrics), which go to the core directly: they change
nothing and must stay fast while an operation runs (routes.py has the operations)."""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import json
import os
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dagvault.catalog import list_with_pre_restore
from dagvault.errors import DagvaultError
from dagvault.schedule import backup_schedule
from dagvault_api import auth
from dagvault_api.metrics import CONTENT_TYPE
from dagvault_api.models import BackupEntry, Envelope, ErrorEnvelope, Health, Schedule
from dagvault_api.operations import ERROR_STATUSES
from dagvault_api.paths import MAX_PATH_CHARS
from dagvault_api.peer import peer_uid
from dagvault_api.routes import operations_router
from dagvault_api.service import (
    ACTIONS,
    INTERNAL_ERROR,
    ApiConfig,
    ApiError,
    Service,
    envelope,
    error_body,
    log,
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in [*ERROR_STATUSES, 405]
}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]


class SafeJSONResponse(JSONResponse):
    """ASCII-escaped JSON: a message that quotes a request's lone surrogate still renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _caller(request: Request) -> str:
    return f"client:{request.client.host}" if request.client else "client:unknown"


def _require_own_user(request: Request) -> None:
    """Without a token, only processes of the server's own user (or root) may change
    anything: every account on the node can reach a loopback port."""
    server = request.scope.get("server")
    uid = None
    if request.client and server:
        uid = peer_uid((request.client.host, request.client.port), (server[0], server[1]))
    if uid not in (os.geteuid(), 0):
        request.state.denied = True
        raise ApiError(
            401,
            "Without DAGVAULT_API_TOKEN only processes of the user running the server may "
            "change anything",
            "Run the client as that user, or set DAGVAULT_API_TOKEN on the server and send "
            "`Authorization: Bearer <token>`.",
        )


def create_app(config: ApiConfig) -> FastAPI:
    service = Service(config)
    settings = config.settings
    started = time.monotonic()
    bearer = HTTPBearer(auto_error=False, description="DAGVAULT_API_TOKEN")

    def require_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        request.state.who = _caller(request)
        if config.token is None:
            _require_own_user(request)
            return
        if credentials is None or not auth.token_matches(credentials.credentials, config.token):
            request.state.denied = True
            raise ApiError(
                401,
                "Missing or wrong bearer token",
                "Send `Authorization: Bearer <DAGVAULT_API_TOKEN>`.",
            )
        request.state.who = auth.fingerprint(config.token)

    def open_read(request: Request) -> None:
        request.state.who = _caller(request)

    reads = [Depends(require_token if config.protect_reads else open_read)]
    app = FastAPI(
        title="dagvault",
        summary="Backup, restore and export of the DAG ledger's SQLite database",
        version="1",
        responses=ERROR_RESPONSES,
        default_response_class=SafeJSONResponse,
    )
    if config.token is None:
        # Token-less means loopback only; refusing other Host headers keeps a web page
        # from reaching the API through DNS rebinding.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.include_router(operations_router(service, [Depends(require_token)]))

    @app.middleware("http")
    async def audit_mutations(request: Request, call_next: Callable[..., Any]) -> Response:
        """One audit line per mutating request (refused, invalid or run), after it ended."""
        status = 500  # an unexpected error escapes call_next and becomes a 500
        try:
            response: Response = await call_next(request)
            status = response.status_code
        finally:
            state = request.state
            denied = getattr(state, "denied", False)
            if request.url.path in ACTIONS or denied:
                service.audit.record(
                    who=getattr(state, "who", _caller(request)),
                    action=ACTIONS.get(request.url.path, request.url.path),
                    request=getattr(state, "params", None),
                    result="denied" if denied else "success" if status < 400 else "failure",
                    status=status,
                    error=getattr(state, "error", None),
                    flow_run_id=getattr(state, "flow_run_id", None),
                )
        return response

    def answer(request: Request, error: ApiError) -> JSONResponse:
        request.state.error = error.message
        return SafeJSONResponse(
            error_body(error.message, error.hint, error.data),
            status_code=error.status,
            headers={"WWW-Authenticate": "Bearer"} if error.status == 401 else None,
        )

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return answer(request, exc)

    @app.exception_handler(DagvaultError)
    async def on_refused(request: Request, exc: DagvaultError) -> JSONResponse:
        """Bad input a route found before any flow ran (a path outside BACKUP_DIR…)."""
        return answer(request, service.refusal(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = [str(part) for part in error["loc"] if part not in ("body", "query")]
            problems.append(f"{'.'.join(where) or 'body'}: {error['msg']}")
        message = "Invalid request: " + "; ".join(problems)
        return answer(request, ApiError(400, message, "See the request schema at /docs."))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return SafeJSONResponse(
            error_body(str(exc.detail), None), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("Unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return SafeJSONResponse(error_body(INTERNAL_ERROR, None), status_code=500)

    @app.get("/backup/list", dependencies=reads, response_model=Envelope[list[BackupEntry]])
    def list_(
        backup_dir: Annotated[str | None, Query(min_length=1, max_length=MAX_PATH_CHARS)] = None,
        limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> dict[str, Any]:
        """Backups of BACKUP_DIR (or a directory inside it) and DATABASE_PATH's pre-restore
        backups (``kind``: backup / pre-restore), newest first."""
        directory = service.backups.confine("backup_dir", backup_dir or str(settings.backup_dir))
        database = settings.database_path
        local = service.local(directory)
        entries = list_with_pre_restore(local, service.local(database), limit=limit)
        # Paths in their configured spelling, never more of the filesystem.
        return envelope(
            [
                {
                    **e.to_json(),
                    "backup_path": str(
                        (directory if e.path.parent == local else database.parent) / e.path.name
                    ),
                }
                for e in entries
            ]
        )

    @app.get("/backup/schedule", dependencies=reads, response_model=Envelope[Schedule])
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

    @app.get("/health", response_model=Envelope[Health])
    async def health() -> dict[str, Any]:
        """Liveness: answers while operations run; never reads the backups."""
        running = sum(
            int(sample.value)
            for family in service.metrics.in_progress.collect()
            for sample in family.samples
        )
        return envelope(
            {
                "status": "ok",
                "database_present": service.local(settings.database_path).is_file(),
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
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return app
