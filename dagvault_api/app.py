"""The FastAPI application: authentication, errors as envelopes, its middleware (body
limit, audit), and the reads (list, schedule, health, metrics), which go to the core
directly: they change nothing and must stay fast while an operation runs (routes.py has
the operations)."""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dagvault.catalog import list_with_pre_restore
from dagvault.errors import HTTP_STATUSES, DagvaultError
from dagvault.health import check_health
from dagvault.json_errors import describe_json_error
from dagvault.operations import BackupRecord
from dagvault.schedule import backup_schedule
from dagvault.storage import is_url
from dagvault_api.audit_requests import AuditRequests
from dagvault_api.caller import identify
from dagvault_api.docs import add_docs
from dagvault_api.limits import MAX_BODY_SETTING, BodyLimit, BodyTooLarge
from dagvault_api.metrics import CONTENT_TYPE
from dagvault_api.models import Envelope, ErrorEnvelope, Health, Schedule
from dagvault_api.paths import MAX_PATH_CHARS
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
    status: {"model": ErrorEnvelope} for status in sorted({*HTTP_STATUSES, 401, 405, 413})
}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]


class SafeJSONResponse(JSONResponse):
    """ASCII-escaped JSON: a message that quotes a request's lone surrogate still renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _closing(service: Service) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.audit.close()  # the last minute's count of suppressed denied lines

    return lifespan


def create_app(config: ApiConfig) -> FastAPI:
    service = Service(config)
    settings = config.settings
    started = time.monotonic()
    bearer = HTTPBearer(auto_error=False, description="DAGVAULT_API_TOKEN")

    def require_token(
        request: Request,
        # Publishes the bearer scheme in OpenAPI; the check itself is caller.py's, made from
        # the headers before the body was read (limits.py).
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if identify(request.scope, config.token).authenticated:
            return
        request.state.denied = True
        if config.token is None:
            raise ApiError(
                401,
                "Without DAGVAULT_API_TOKEN only processes of the user running the server may "
                "change anything",
                "Run the client as that user, or give the server a token "
                "(DAGVAULT_API_TOKEN_FILE) and send `Authorization: Bearer <token>`.",
            )
        raise ApiError(
            401,
            "Missing or wrong bearer token",
            "Send `Authorization: Bearer <token>` with the server's DAGVAULT_API_TOKEN.",
        )

    reads = [Depends(require_token)] if config.protect_reads else []
    app = FastAPI(
        title="dagvault",
        summary="Backup, restore and export of the DAG ledger's SQLite database",
        version="1",
        responses=ERROR_RESPONSES,
        default_response_class=SafeJSONResponse,
        docs_url=None,  # docs.py serves /docs from local files; ReDoc only exists on a CDN
        redoc_url=None,
        lifespan=_closing(service),
    )
    add_docs(app)
    if config.token is None:
        # Token-less means loopback only; refusing other Host headers keeps a web page
        # from reaching the API through DNS rebinding.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.include_router(operations_router(service, [Depends(require_token)]))

    app.add_middleware(AuditRequests, audit=service.audit, actions=ACTIONS, token=config.token)

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
            if error["type"] == "json_invalid" and isinstance(exc.body, str):
                # FastAPI says "16: JSON decode error" (16: a character offset): say where.
                syntax = json.JSONDecodeError(error["ctx"]["error"], exc.body, error["loc"][1])
                problems.append(f"body is not JSON: {describe_json_error(syntax, 'the body')}")
                continue
            where = [str(part) for part in error["loc"] if part not in ("body", "query")]
            problems.append(f"{'.'.join(where) or 'body'}: {error['msg']}")
        message = "Invalid request: " + "; ".join(problems)
        return answer(request, ApiError(400, message, "See the request schema at /docs."))

    @app.exception_handler(BodyTooLarge)
    async def on_too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return answer(
            request,
            ApiError(
                413,
                str(exc.detail),
                f"The API's requests are small JSON bodies; if one really needs more, raise "
                f"{MAX_BODY_SETTING} (api.max_body_bytes) on the server.",
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return SafeJSONResponse(
            error_body(str(exc.detail), None), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("Unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return SafeJSONResponse(error_body(INTERNAL_ERROR, None), status_code=500)

    @app.get("/backup/list", dependencies=reads, response_model=Envelope[list[BackupRecord]])
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
        """Liveness: answers while operations run; never reads the backups (it stats them:
        ``degraded`` with warnings when they are open to more accounts than the ledger)."""
        running = sum(
            int(sample.value)
            for family in service.metrics.in_progress.collect()
            for sample in family.samples
        )
        backups = None if is_url(settings.backup_dir) else service.local(settings.backup_dir)
        report = check_health(service.local(settings.database_path), backups)
        return envelope(
            {
                **report.to_json(),
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

    # Added last, so outermost: it decides on the body before any other layer reads it.
    app.add_middleware(BodyLimit, token=config.token, max_body_bytes=settings.api_max_body_bytes)
    return app
