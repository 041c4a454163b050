"""What the routes share: the configuration, the envelope, and running one operation
(a Prefect flow run, started by flows.launcher) with its metrics, audit details and errors.

Each request's flow runs in a worker thread of the server (FastAPI runs plain ``def``
endpoints in a thread pool), so a long backup never blocks /health or /metrics, and it
lands in Prefect's run history tagged ``dagvault-api``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request

from dagvault.backup import validate_name
from dagvault.config import Settings
from dagvault.errors import BackupNotFound, ConfigError, DagvaultError, http_status
from dagvault.operations.common import Options
from dagvault.safedir import confined
from dagvault_api.audit import AuditLog
from dagvault_api.metrics import Metrics
from dagvault_api.paths import Area, PathRejected
from dagvault_api.scrub import Scrubber
from flows.launcher import LaunchFailed, launch

# uvicorn configures this logger: unexpected errors land in the server's log.
log = logging.getLogger("uvicorn.error")

# The mutating endpoints, each audited and counted under its operation name.
ACTIONS = {
    "/backup": "backup",
    "/backup/restore": "restore",
    "/backup/export": "export",
    "/backup/import": "import",
    "/backup/verify": "verify",
    "/backup/cleanup": "cleanup",
}
# The operations the node's CLI hands over (routes/handoff.py), audited like the above.
HANDOVER_PREFIX = "/operations/"
INTERNAL_ERROR = "Internal error; the server log has the details"


@dataclass(frozen=True)
class ApiConfig:
    settings: Settings
    config_file: str | None
    base: Path  # the server's working directory: relative paths in requests resolve here
    token: str | None
    protect_reads: bool  # listening beyond loopback: reads need the token too
    audit_log: Path


class ApiError(Exception):
    """An answer other than success: status, message, remedy and optional data; ``error``:
    the failure it reports, when it is one of dagvault's."""

    def __init__(
        self,
        status: int,
        message: str,
        hint: str | None = None,
        data: Any = None,
        error: DagvaultError | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.hint, self.data = status, message, hint, data
        self.error = error


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def envelope(data: Any) -> dict[str, Any]:
    """The response envelope (docs/http-api.md)."""
    return {"success": True, "data": data, "error": None, "timestamp": now()}


def error_body(message: str, hint: str | None, data: Any = None) -> dict[str, Any]:
    return {"success": False, "data": data, "error": message, "hint": hint, "timestamp": now()}


class Service:
    def __init__(self, config: ApiConfig) -> None:
        settings = config.settings
        self.config = config
        self.settings = settings
        self.backups = Area(settings.backup_dir, "BACKUP_DIR", config.base)
        self.exports = Area(settings.export_dir, "EXPORT_DIR", config.base)
        self.scrub = Scrubber(config.base, [settings.backup_dir, settings.export_dir])
        self.metrics = Metrics(
            config.base / settings.database_path,
            config.base / settings.backup_dir,
            [*ACTIONS.values(), "prune"],
        )
        self.audit = AuditLog(config.audit_log)

    def local(self, path: Path) -> Path:
        """A configured or confined path as this process opens it."""
        return self.config.base / path

    def existing(self, path: Path, what: str = "Backup") -> Path:
        """Fail before a flow run starts when the file named does not exist (a cheap 404)."""
        if not self.local(path).is_file():
            raise BackupNotFound(
                f"{what} {path} does not exist", "GET /backup/list shows the backups there are."
            )
        return path

    def refusal(self, error: DagvaultError) -> ApiError:
        reports = getattr(error, "reports", None)
        return ApiError(
            http_status(error),
            self.scrub(error.message),
            self.scrub(error.hint_for("api")) or None,
            {"reports": reports} if reports is not None else None,
            error,
        )

    def run(
        self,
        request: Request,
        params: dict[str, Any],
        operation: str,
        message: str | Callable[[Any], str],
        options: Options | None = None,
        action: str | None = None,
        settings: Settings | None = None,
        origin: str = "api",
        **flow_parameters: Any,
    ) -> dict[str, Any]:
        """Run one operation as a flow run and answer with its result; count it, leave
        its details for the audit line, and turn its failure into an ApiError. ``action``:
        the name it is counted under (default: its endpoint's, ACTIONS); ``settings``: the
        run's, when not the server's (a handed-over command's, routes/handoff.py); ``origin``:
        who started it (its run's tag: a handed-over command's run is the CLI's)."""
        action = action or ACTIONS[request.url.path]
        request.state.params = params
        # The operation itself is counted by the core, in the directory's journal.
        try:
            # The request's paths were checked against BACKUP_DIR and EXPORT_DIR: below them
            # the core follows no symbolic link swapped in since (dagvault.safedir).
            with (
                self.metrics.in_progress.labels(action).track_inprogress(),
                confined(
                    self.local(self.settings.backup_dir), self.local(self.settings.export_dir)
                ),
            ):
                outcome = launch(
                    operation,
                    options,
                    origin=origin,
                    config_file=self.config.config_file,
                    # What the request's paths were confined to is what its run uses: the
                    # run does not read the configuration again.
                    settings=settings or self.settings,
                    **flow_parameters,
                )
        except LaunchFailed as failure:
            request.state.flow_run_id = failure.flow_run_id
            if not isinstance(failure.error, DagvaultError):
                log.error("Unexpected failure of %s", action, exc_info=failure.error)
                raise ApiError(500, INTERNAL_ERROR) from None
            raise self.refusal(failure.error) from None
        request.state.flow_run_id = outcome.flow_run_id
        result = outcome.document
        return {
            "success": True,
            "message": message(result) if callable(message) else message,
            "timestamp": now(),
            "flow_run_id": outcome.flow_run_id,
            "result": result,
        }


def backup_name(name: str) -> str:
    try:
        return validate_name(name)
    except ConfigError as exc:
        raise PathRejected("backup_path", exc.message, exc.hint) from None
