"""The audit middleware: one line per mutating request (refused, invalid or run), and per
refused read, written when the request has been handled, before its answer goes out.

A plain ASGI middleware, not Starlette's BaseHTTPMiddleware: that one reads the request in
a task group, which would turn the body limit's 413 (raised while FastAPI reads the body,
limits.py) into an exception group and a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anyio import to_thread

from dagvault_api.audit import AuditLog
from dagvault_api.caller import identify
from dagvault_api.limits import ASGIApp, Message, Receive, Scope, Send


class AuditRequests:
    def __init__(
        self,
        app: ASGIApp,
        *,
        audit: AuditLog,
        actions: Mapping[str, str],
        handover_prefix: str,
        token: str | None,
    ) -> None:
        self.app = app
        self.audit = audit
        self.actions = actions
        self.handover_prefix = handover_prefix
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            # In a worker thread: the line is fsynced, and a token-less server reads
            # /proc/net/tcp to know the caller; neither may stall the event loop.
            await to_thread.run_sync(self._record, scope, status)

        async def recording_first(message: Message) -> None:
            # The line is on disk before the client can read the answer: an acknowledged
            # operation is always in the log.
            if message["type"] == "http.response.start":
                await record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_first)
        finally:
            if not recorded:  # an error escaped the app: ServerErrorMiddleware answers 500
                await record(500)

    def _record(self, scope: Scope, status: int) -> None:
        # Routes and handlers leave their details in request.state, i.e. scope["state"].
        state: dict[str, Any] = scope.get("state", {})
        path = scope["path"]
        denied = state.get("denied", False)
        # An operation the CLI handed over is audited like its public endpoint.
        action = self.actions.get(path) or path.removeprefix(self.handover_prefix)
        if action == path and not denied:
            return
        caller = identify(scope, self.token)
        self.audit.record(
            limited=not caller.authenticated,
            who=caller.who,
            client=caller.address,
            action=action,
            request=state.get("params"),
            result="denied" if denied else "success" if status < 400 else "failure",
            status=status,
            error=state.get("error"),
            flow_run_id=state.get("flow_run_id"),
        )
