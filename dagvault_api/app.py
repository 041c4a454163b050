"""The FastAPI application: errors as envelopes, its middleware (body limit, audit), and
the endpoints of routes/ (backups, exports, status, the CLI's handover), the writes
behind auth.py's check."""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from dagvault import afterwards
from dagvault.errors import HTTP_STATUSES, DagvaultError
from dagvault.json_errors import describe_json_error
from dagvault.quality.gx_runner import data_docs_dir
from dagvault_api import auth
from dagvault_api.audit_requests import AuditRequests
from dagvault_api.data_docs import mount_data_docs
from dagvault_api.docs import add_docs
from dagvault_api.limits import MAX_BODY_SETTING, BodyLimit, BodyTooLarge
from dagvault_api.models import ErrorEnvelope
from dagvault_api.routes import backups_router, exports_router, handoff_router, status_router
from dagvault_api.service import (
    ACTIONS,
    HANDOVER_PREFIX,
    INTERNAL_ERROR,
    ApiConfig,
    ApiError,
    Service,
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
        # A run's answer does not wait for its display (artifacts, Data Docs pages); a
        # clean stop (`dagvault down`) publishes what is left first.
        afterwards.start()
        yield
        await anyio.to_thread.run_sync(afterwards.finish)
        service.audit.close()  # the last minute's count of suppressed denied lines

    return lifespan


def create_app(config: ApiConfig) -> FastAPI:
    service = Service(config)
    settings = config.settings
    require_token = auth.token_check(config.token)

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
    writes = [Depends(require_token)]
    app.include_router(backups_router(service, writes, reads))
    app.include_router(exports_router(service, writes))
    app.include_router(status_router(service, reads))
    app.include_router(handoff_router(service, writes))
    mount_data_docs(
        app,
        data_docs_dir(service.local(settings.reports_dir)),
        token=config.token if config.protect_reads else None,
    )

    app.add_middleware(
        AuditRequests,
        audit=service.audit,
        actions=ACTIONS,
        handover_prefix=HANDOVER_PREFIX,
        token=config.token,
    )

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

    # Added last, so outermost: it decides on the body before any other layer reads it.
    app.add_middleware(BodyLimit, token=config.token, max_body_bytes=settings.api_max_body_bytes)
    return app
