"""The GX Data Docs of the quality gates, served read-only at /data-docs/ so that the link
artifacts of the Prefect UI (DAGVAULT_REPORTS_URL) open in any browser.

Open as the other reads are: on loopback to any local browser (a browser following a link
cannot send a bearer token); on a server listening beyond loopback, where reads need the
token, these pages need it too: they hold up to five sample values of a failed check (ids
or hashes of ledger rows, docs/security.md), which those who cannot read the ledger must not
see. What is served is only the ``data_docs`` directory under DAGVAULT_REPORTS_DIR — never
a backup, an export or the configuration. GET and HEAD only; a symbolic link that leads out
of the directory is not followed. A gate answers before its pages are written
(``dagvault.afterwards``): a request waits for the pages queued before it (at most
SETTLE_SECONDS), so the link of a run that just answered opens its page.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from dagvault import afterwards
from dagvault_api.caller import identify
from dagvault_api.service import error_body

PATH = "/data-docs"
SETTLE_SECONDS = 10.0  # a 500-transaction gate's pages take about a second


def mount_data_docs(app: FastAPI, directory: Path, *, token: str | None) -> None:
    """Serve ``directory`` at /data-docs/; with ``token``, only to callers presenting it."""
    # check_dir=False: the directory appears with the first gate run, after the server starts.
    files = StaticFiles(directory=directory, html=True, check_dir=False)

    async def pages(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.to_thread.run_sync(afterwards.settle, SETTLE_SECONDS)
        await files(scope, receive, send)

    if token is None:
        app.mount(PATH, pages, "data-docs")
        return

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not identify(scope, token).authenticated:
            refusal = JSONResponse(
                error_body(
                    "Missing or wrong bearer token",
                    "Send `Authorization: Bearer <token>` (a server listening beyond loopback "
                    "shows its Data Docs to token holders only; docs/security.md).",
                ),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await refusal(scope, receive, send)
            return
        await pages(scope, receive, send)

    app.mount(PATH, guarded, "data-docs")
