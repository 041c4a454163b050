"""The GX Data Docs of the quality gates, served read-only at /data-docs/ so that the link
artifacts of the Prefect UI (DAGVAULT_REPORTS_URL) open in any browser.

Public, like /health, even where the other reads need the token: a browser following a
link cannot send a bearer token. What is served is only the ``data_docs`` directory under
DAGVAULT_REPORTS_DIR: the gates' verdicts, row counts and at most five sample values of a
failed check (docs/security.md) — never a backup, an export or the configuration. GET and
HEAD only; a symbolic link that leads out of the directory is not followed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

PATH = "/data-docs"


def mount_data_docs(app: FastAPI, directory: Path) -> None:
    # check_dir=False: the directory appears with the first gate run, after the server starts.
    app.mount(PATH, StaticFiles(directory=directory, html=True, check_dir=False), "data-docs")
