"""``dagvault api``: check the bind policy, then serve the API with uvicorn."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from dagvault import permissions
from dagvault.config import load_settings
from dagvault_api import auth

AUDIT_ENV = "DAGVAULT_AUDIT_LOG"
DEFAULT_AUDIT_LOG = "./dagvault-audit.jsonl"


def serve(
    host: str, port: int, *, config_file: str | None, audit_log: str | None, warm_up: bool = False
) -> int:
    permissions.restrict_process_umask()
    settings = load_settings(config_file=config_file)
    token = auth.load_token(os.environ)
    auth.check_bind(host, token)

    import uvicorn

    from dagvault_api.app import create_app  # imports Prefect
    from dagvault_api.service import ApiConfig
    from flows.launcher import prepare

    prepare()  # in this main thread: a temporary Prefect server must die with it
    app = create_app(
        ApiConfig(
            settings=settings,
            config_file=config_file,
            base=Path.cwd(),
            token=token,
            protect_reads=not auth.is_loopback(host),
            audit_log=Path(audit_log or os.environ.get(AUDIT_ENV) or DEFAULT_AUDIT_LOG),
        )
    )
    if token is None:
        print(auth.tokenless_warning(host), file=sys.stderr)
    if warm_up:
        threading.Thread(target=_warm_up, name="dagvault-warm-up", daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
    return 0


def _warm_up() -> None:
    """Import what the first gate and the first export need (GX alone takes seconds) while
    the API already answers: the node service's first backup then costs what later ones do."""
    import duckdb  # noqa: F401

    from dagvault.quality import gx_runner

    gx_runner.load()
