"""Operations the node's own CLI hands over (``dagvault up`` runs this API): the flow runs
here, where Prefect and GX are imported already, and the CLI prints the result.

``POST /operations/{operation}`` (token always) takes the CLI's options model, the few
parameters of its flags that are not options, and the settings the CLI resolved. It runs
only what the public endpoints would allow, against the settings this server runs with:

* settings that differ (another DATABASE_PATH, another key…): 409 ``HandoffDeclined``;
* a path outside BACKUP_DIR / EXPORT_DIR, a storage target: 400 ``PathRejected``;
* an operation without a handover (schedule, replicate, fleet): 404.

Each of those tells the CLI to run the operation itself, as without a service. The answer
carries the result document, the dagvault event lines the run logged (the CLI prints them
as it would have), and on failure the failure's type, so the CLI exits as in-process.

``GET /progress/{ticket}`` (token always): the latest step of the run that a request with
that ``progress`` ticket started, while it works; the CLI draws its bar from it on a terminal.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from dagvault import progress
from dagvault.backup import validate_name
from dagvault.config import Settings, load_settings, settings_document
from dagvault.errors import DagvaultError, HandoffDeclined
from dagvault.operations.common import Options
from dagvault.operations.registry import HANDED_OVER, OPERATIONS
from dagvault.operations.restore import ImportOptions
from dagvault_api.models import Envelope, HandoverData, ProgressData
from dagvault_api.service import HANDOVER_PREFIX, ApiError, Service, envelope

# The settings that say where a run reads and writes: a command that names other places
# runs in-process (the service touches only its own).
PLACES = {
    "database_path",
    "backup_dir",
    "replicas",
    "encryption_key_file",
    "staging_dir",
    "export_dir",
    "reports_dir",
    "secrets_sha256",
}


TICKET = r"^[0-9a-f]{32}$"


class Handoff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    options: dict[str, Any] = Field(default_factory=dict)
    # Flags that are not options (a backup's file name, a restore without verification…).
    parameters: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any]  # the CLI's resolved settings (dagvault.config.settings_document)
    # A ticket the CLI made up (it draws a bar): GET /progress/<ticket> shows the run's steps.
    progress: str | None = Field(default=None, pattern=TICKET)


class _BackupParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None


class _RestoreParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verify_first: StrictBool = True


class _ExportParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    out: str | None = None
    encrypt: StrictBool = False


class _NoParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The parameters allowed beside an operation's options model, for the operations the
# service takes (the registry's HANDED_OVER); the others run in the command's own process.
_PARAMETERS: dict[str, type[BaseModel]] = {
    "backup": _BackupParameters,
    "restore": _RestoreParameters,
    "export": _ExportParameters,
}
HANDOVERS: dict[str, type[BaseModel]] = {
    name: _PARAMETERS.get(name, _NoParameters) for name in sorted(HANDED_OVER)
}

# The dagvault event lines (📦 ✅ 🧹 …) one handed-over run logs, in whichever thread of
# the run they are logged (Prefect copies the context into its task threads).
_events: ContextVar[list[str] | None] = ContextVar("dagvault_handoff_events", default=None)


class _EventLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        lines = _events.get()
        if lines is not None:
            lines.append(record.getMessage())


_EVENT_LINES = _EventLines()


# Per ticket, the latest progress step of the run its request started (while it runs).
_steps: dict[str, ProgressData] = {}
_ticket: ContextVar[str | None] = ContextVar("dagvault_handoff_ticket", default=None)


@contextlib.contextmanager
def _reporting_progress(ticket: str | None) -> Iterator[None]:
    """Keep the run's latest step under ``ticket``: only this request's run's (its task
    threads see the request's context), never another's at the same time."""
    if ticket is None:
        yield
        return

    def note(stage: str, done: int, total: int) -> None:
        if _ticket.get() == ticket:
            _steps[ticket] = ProgressData(stage=stage, done=done, total=total)

    token = _ticket.set(ticket)
    try:
        with progress.listening(note):
            yield
    finally:
        _ticket.reset(token)
        _steps.pop(ticket, None)


@contextlib.contextmanager
def _collecting_events() -> Iterator[list[str]]:
    lines: list[str] = []
    token = _events.set(lines)
    try:
        yield lines
    finally:
        _events.reset(token)


def handoff_router(service: Service, writes: list[Depends]) -> APIRouter:
    router = APIRouter(dependencies=writes)
    settings = service.settings
    own_settings = settings_document(settings, service.config.base)
    core_logger = logging.getLogger("dagvault")
    # One handler per process, however many apps are made (tests make several): a second
    # would report each event line twice.
    if _EVENT_LINES not in core_logger.handlers:
        core_logger.addHandler(_EVENT_LINES)
    core_logger.setLevel(logging.INFO)

    def _command_settings(theirs: dict[str, Any]) -> Settings:
        """The command's settings, when it acts on this service's places: the same
        database, directories, replicas, key and credentials (what the service may touch);
        its other settings (a format, a retention count…) apply to its run, as a request's
        fields do."""
        differing = {
            name
            for name in own_settings.keys() | theirs.keys()
            if own_settings.get(name) != theirs.get(name)
        }
        elsewhere = sorted((differing & PLACES) | (differing - own_settings.keys() & theirs.keys()))
        if elsewhere or any(theirs.get(name) is None for name in differing):
            raise HandoffDeclined(
                "The service runs with other settings ("
                + ", ".join(elsewhere or sorted(differing))
                + ")",
                "Run the command with the service's settings, or in-process.",
            )
        return load_settings({name: theirs[name] for name in differing}, base=settings)

    def confine_paths(options: Options, parameters: BaseModel) -> dict[str, Any]:
        """The request's paths proven inside BACKUP_DIR / EXPORT_DIR, as the public
        endpoints prove them; the flow parameters that follow from them."""
        update: dict[str, Any] = {}
        backup_path = getattr(options, "backup_path", None)
        if backup_path is not None:
            area = service.backups.confine("backup_path", backup_path)
            update["backup_path"] = str(service.existing(area))
        if isinstance(options, ImportOptions):
            dump = service.exports.confine("sql_path", options.sql_path)
            update["sql_path"] = str(service.existing(dump, "SQL dump"))
        flow_parameters = parameters.model_dump()
        if isinstance(parameters, _BackupParameters) and parameters.name is not None:
            flow_parameters["name"] = validate_name(parameters.name)
        if isinstance(parameters, _ExportParameters) and parameters.out is not None:
            flow_parameters["out"] = str(service.exports.confine("out", parameters.out))
        return {"options": options.model_copy(update=update), **flow_parameters}

    @router.post(HANDOVER_PREFIX + "{operation}", response_model=Envelope[HandoverData])
    def hand_over(
        operation: Annotated[str, Path(max_length=40)], body: Handoff, request: Request
    ) -> dict[str, Any]:
        """Run one operation for the node's CLI (``dagvault up``; docs/service.md)."""
        if operation not in HANDOVERS:
            raise ApiError(404, f"No handover for {operation!r}", "Run it in-process.")
        try:
            run_settings = _command_settings(body.settings)
        except HandoffDeclined as declined:
            raise _typed(service.refusal(declined), declined, []) from None
        try:
            options = OPERATIONS[operation].options.model_validate(body.options)
            parameters = HANDOVERS[operation].model_validate(body.parameters)
        except ValueError as exc:
            raise ApiError(400, f"Invalid handover: {exc}") from None
        with _collecting_events() as events, _reporting_progress(body.progress):
            try:
                flow_parameters = confine_paths(options, parameters)
                data = service.run(
                    request,
                    {"operation": operation},
                    operation,
                    f"{operation} done.",
                    flow_parameters.pop("options"),
                    action="import" if operation == "import-sql" else operation,
                    settings=run_settings,
                    origin="cli",
                    **flow_parameters,
                )
            except DagvaultError as refused:
                raise _typed(service.refusal(refused), refused, events) from None
            except ApiError as failed:
                raise _typed(failed, failed.error, events) from None
        return envelope({**data, "events": events})

    @router.get("/progress/{ticket}", response_model=Envelope[ProgressData | None])
    def progress_of(ticket: Annotated[str, Path(pattern=TICKET)]) -> dict[str, Any]:
        """The latest step of a handed-over run (none before its first, or after its end)."""
        return envelope(_steps.get(ticket))

    return router


def _typed(answer: ApiError, error: DagvaultError | None, events: list[str]) -> ApiError:
    """The answer with what the CLI needs to fail as in-process: the failure's type (its
    exit code) and the event lines logged before it (the ❌ line among them)."""
    answer.data = {
        **(answer.data or {}),
        "error_type": type(error).__name__ if error is not None else None,
        # The remedy in the CLI's words (an override's flag, not its request field).
        "cli_hint": error.hint_for("cli") if error is not None else None,
        "events": events,
    }
    return answer
