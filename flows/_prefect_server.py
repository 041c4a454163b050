"""The temporary Prefect server of one CLI command or one `dagvault api` process.

Without PREFECT_API_URL, Prefect would start a temporary server by itself: open to every
local user (run history, and a PATCH of a concurrency limit to 0 stops every backup), left
running forever when its parent is SIGKILLed, and sending telemetry. We start it instead,
as Prefect does (same uvicorn app, same database under PREFECT_HOME), except that it

* asks for a random secret per start (Prefect's basic auth: PREFECT_SERVER_API_AUTH_STRING
  on the server, PREFECT_API_AUTH_STRING in this process);
* dies with its parent (Linux PR_SET_PDEATHSIG), and is stopped when the parent exits;
* sends no telemetry unless PREFECT_SERVER_ANALYTICS_ENABLED says otherwise (a node
  without internet would log an ERROR for each run);
* begins its SQLite write transactions IMMEDIATE, as the node service's server does
  (flows/_prefect_sqlite.py: no 503 and 2 s retry when two writers overlap);
* writes its own output to PREFECT_HOME/dagvault-temporary-server.log, not to the
  command's terminal: what the server logs as it is stopped (a database connection
  cancelled mid-rollback) is not the command's failure, and a successful command prints no
  traceback. A server that does not start is an error that quotes that log.

The URL and secret go into this process's environment, so child processes (a local Dask
cluster's workers) use the same server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import prefect
from prefect.context import refresh_global_settings_context
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, get_current_settings

from dagvault.errors import ConfigError
from dagvault.procs import die_with_parent

# Set to the URL of the server started here: the runs that use it (or another temporary
# server on the same PREFECT_HOME) tell it apart from a persistent one by this.
TEMPORARY_URL_ENV = "DAGVAULT_TEMPORARY_PREFECT_URL"


def use_temporary_server() -> None:
    """Unless a Prefect API is configured, start this process's temporary server and point
    Prefect at it. Call it from the main thread: the server dies when that thread does."""
    if PREFECT_API_URL.value():
        return
    secret = secrets.token_urlsafe(32)
    server = _server_class()()
    server.secret = secret
    server.log = _log_file()
    try:
        server.start()  # registers its stop() to run when this process exits
    except Exception as exc:
        raise ConfigError(
            f"Prefect's temporary server did not start: {exc}; its log {server.log} ends "
            f"with: {_tail(server.log)}",
            "Fix what the log says, or run the service (`dagvault up`) or a Prefect server "
            "and point PREFECT_API_URL at it.",
        ) from None
    os.environ.update(
        {
            "PREFECT_API_URL": server.api_url,
            "PREFECT_API_AUTH_STRING": secret,
            TEMPORARY_URL_ENV: server.api_url,
        }
    )
    refresh_global_settings_context()


# Kept below this size: older lines move to <log>.1 when a server starts.
LOG_LIMIT_BYTES = 1 << 20


def _log_file() -> Path:
    log = PREFECT_HOME.value() / "dagvault-temporary-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if log.stat().st_size > LOG_LIMIT_BYTES:
            log.replace(log.with_name(log.name + ".1"))
    return log


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError as exc:
        return f"(unreadable: {exc})"
    return " | ".join(text) or "(nothing)"


def _server_class() -> type[Any]:
    # Prefect's server package costs about 3 s to import; a command run against a
    # configured Prefect API (a service, the test server) never needs it.
    from prefect.server.api.server import SubprocessASGIServer

    class _Server(SubprocessASGIServer):
        # Its own instances: Prefect keeps one server per port, and ours must not be its.
        _instances: ClassVar[dict[int | None, SubprocessASGIServer]] = {}
        secret = ""
        log = Path(os.devnull)

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect's own command and environment, plus the secret, the telemetry default
            # and the parent-death signal.
            env = {
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                **os.environ,
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
                **get_current_settings().to_environment_variables(exclude_unset=True),
                "PREFECT_SERVER_API_AUTH_STRING": self.secret,
            }
            # Owner-only, as PREFECT_HOME's database: the server may log run parameters.
            output = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                return self._popen(env, output)
            finally:
                os.close(output)  # (the child has its own copy)

        def _popen(self, env: dict[str, str], output: int) -> subprocess.Popen[Any]:
            return subprocess.Popen(
                args=[
                    sys.executable,
                    "-P",  # not the working directory's modules: a project's own flows/
                    "-m",
                    "flows._prefect_sqlite",  # uvicorn, with IMMEDIATE SQLite writes
                    "--app-dir",
                    str(prefect.__module_path__.parent),
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Elsewhere than on Linux it is only stopped when its parent exits normally.
                preexec_fn=die_with_parent(signal.SIGKILL),
            )

    return _Server
