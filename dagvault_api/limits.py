"""The outermost layer of the API: a request body is read only from an authenticated
caller, and only up to DAGVAULT_API_MAX_BODY_BYTES (``api.max_body_bytes``, 256 KiB).

Starlette reads a whole body into memory before FastAPI checks anything, so without this a
stranger's 300 MB upload was buffered before the 401. Here:

- a caller the headers do not authenticate (caller.py) gets an empty body: the application
  answers 401 as usual, and the bytes on the wire are never read;
- a ``Content-Length`` above the cap is refused (413) at the first read, without reading;
- a streamed body (chunked, no length) is counted and refused (413) as soon as it passes the
  cap, with at most one chunk of the server's receive buffer (64 KiB) beyond it in memory.

Either way the answer carries ``Connection: close``: the rest of the body is not wanted, and
uvicorn drops what still arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from anyio import to_thread
from starlette.exceptions import HTTPException

from dagvault_api.caller import identify

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_SETTING = "DAGVAULT_API_MAX_BODY_BYTES"


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTPExceptions met while reading a body on
    to the exception handlers (app.py answers it in the envelope)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body larger than {limit} bytes")
        self.limit = limit


def _has_body(headers: list[tuple[bytes, bytes]]) -> tuple[bool, int | None]:
    """(whether a body follows, its declared length if any)."""
    length = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return True, None
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return True, None  # h11 refuses such a request before it gets here
    return bool(length), length


class BodyLimit:
    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_body, declared = _has_body(scope.get("headers", []))
        if not has_body:
            await self.app(scope, receive, send)
            return
        unread = True  # the client's body was not read to its end
        received = 0
        answered = False

        async def no_body() -> Message:
            """An empty body once; then only the end of the connection (what the client
            still sends is dropped chunk by chunk, never kept)."""
            nonlocal answered
            if not answered:
                answered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message

        async def counted() -> Message:
            nonlocal received, unread
            if max(declared or 0, received) > self.limit:
                raise BodyTooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
                unread = unread and bool(message.get("more_body", False))
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        # In a worker thread: without a token, the caller's uid is read from /proc/net/tcp.
        caller = await to_thread.run_sync(identify, scope, self.token)
        await self.app(scope, counted if caller.authenticated else no_body, closing)
