"""The one place that starts an operation's flow: the CLI and the HTTP API both call it.

``prepare()`` readies Prefect for this process (known failures without tracebacks, the
temporary server when no PREFECT_API_URL is set, a clear error when the configured one is
unreachable); ``launch()`` runs one operation's flow in this process, so its run lands in
Prefect's history, and returns its result with the run's id.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dagvault.errors import ConfigError, DagvaultError
from dagvault.operations.common import Options
from dagvault.operations.registry import OPERATIONS
from flows._run_lines import RunLinesOnTerminal

# Each operation's flow, imported when it is launched (importing Prefect costs seconds);
# its options and result models are the registry's (dagvault.operations.registry).
FLOWS: dict[str, str] = {
    "backup": "flows.backup:backup_flow",
    "verify": "flows.verify:verify_flow",
    "restore": "flows.restore:restore_flow",
    "cleanup": "flows.cleanup:cleanup_flow",
    "prune": "flows.prune:prune_flow",
    "replicate": "flows.replicate:replicate_flow",
    "schedule": "flows.scheduled:scheduled_backup_flow",
    "export": "flows.export:export_flow",
    "import-sql": "flows.export:import_sql_flow",
    "fleet-backup": "flows.fleet:fleet_backup_flow",
    "drill": "flows.drill:drill_flow",
    "report": "flows.report:health_report_flow",
}


@dataclass(frozen=True)
class Launched:
    """An operation's typed result (its registry model) and the id of the flow run that
    produced it."""

    result: BaseModel
    flow_run_id: str | None

    @property
    def document(self) -> Any:
        """The result as JSON: what `--json` prints and the API answers."""
        return self.result.model_dump(mode="json")


class LaunchFailed(Exception):
    """A failed flow run: the original error and the run's id (for the API's audit log)."""

    def __init__(self, error: BaseException, flow_run_id: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.flow_run_id = flow_run_id


ORIGINS = ("cli", "api")  # who started a run; a deployment's runs are tagged "schedule"


def launch(
    operation: str,
    options: Options | None = None,
    /,
    *,
    origin: str,
    **parameters: Any,
) -> Launched:
    """Run ``operation``'s flow with its ``options`` and the entry point's ``parameters``
    (``settings``, ``config_file``…); raise LaunchFailed when the run fails. The run is
    tagged ``dagvault`` and its ``origin`` (ORIGINS), its subflow and task runs too; the
    flow adds the operation and ``db:<name>`` once it has resolved its settings."""
    from prefect import tags as run_tags

    prepare()
    module, _, name = FLOWS[operation].partition(":")
    flow = getattr(importlib.import_module(module), name)
    if options is not None:
        parameters = {**options.flow_parameters(), **parameters}
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
    with run_tags("dagvault", origin):
        state = flow(**parameters, return_state=True)
    run_id = state.state_details.flow_run_id
    run_id = str(run_id) if run_id else None
    try:
        result = state.result()
    except Exception as exc:
        raise LaunchFailed(exc, run_id) from exc
    return Launched(OPERATIONS[operation].result.model_validate(result), run_id)


def run_operation(operation: str, options: Options | None = None, /, **parameters: Any) -> Any:
    """``launch`` for a command line: the result, or the run's own error raised."""
    try:
        return launch(operation, options, origin="cli", **parameters).result
    except LaunchFailed as failed:
        raise failed.error from None


_prepared = False


def prepare() -> None:
    """Ready Prefect for this process's flow runs, once. Call it first from the main thread
    (the temporary server dies with the thread that started it)."""
    global _prepared
    if _prepared:
        return
    # prefect.main sets up Prefect's log handlers (`import prefect` alone defers it), which
    # quiet_known_errors filters; here, before the API's uvicorn configures its own loggers,
    # which Prefect's setup would otherwise reset (the API's access log went silent). Only
    # the operation's own flow module is imported (by launch): all of them cost a command
    # about a second more (DuckDB, PyArrow and the off-site stores load with theirs).
    import prefect.main  # noqa: F401

    from flows import _heartbeats
    from flows._prefect_server import use_temporary_server

    _heartbeats.install()
    quiet_known_errors()
    use_temporary_server()
    require_reachable_api()
    _prepared = True


def require_reachable_api() -> None:
    """An unreachable PREFECT_API_URL would end in Prefect's RuntimeError and traceback;
    say which setting is wrong instead. (Unset, a temporary server is started.)"""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return
    with get_client(sync_client=True) as client:
        failure = client.api_healthcheck()
    if failure is not None:
        raise ConfigError(
            f"Cannot reach the Prefect API at {url} (PREFECT_API_URL): {failure}",
            "Start that server (`prefect server start`), point PREFECT_API_URL at a running "
            "one, or unset it to let Prefect start a temporary local server.",
        )


class _NoTracebackForKnownErrors(logging.Filter):
    """Expected failures (bad backup, lock held, disk full) are reported as 'Error: … /
    Try: …' (CLI) or an error envelope (API); Prefect's traceback would only bury that."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DagvaultError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_known_errors() -> None:
    """Drop the tracebacks of expected failures from the handlers Prefect has set up, and
    the run lines from its terminal handler unless they are asked for (show_run_lines)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    quiet = _NoTracebackForKnownErrors()
    run_lines = RunLinesOnTerminal()
    loggers = [logging.getLogger()] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith(("prefect", "dagvault")) and isinstance(logger, logging.Logger)
    ]
    for handler in {h for logger in loggers for h in logger.handlers}:
        handler.addFilter(quiet)
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(run_lines)
