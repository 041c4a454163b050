"""Running a flow from the command line (imports Prefect only when a flow runs)."""

from __future__ import annotations

import logging
from typing import Any

from dagvault.errors import ConfigError, DagvaultError


class _NoTracebackForKnownErrors(logging.Filter):
    """Expected failures (bad backup, lock held, disk full) are reported by the CLI as
    'Error: … / Try: …'; Prefect's traceback of them would only bury that message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DagvaultError):
            record.exc_info = None
            record.exc_text = None
        return True


def require_reachable_api() -> None:
    """An unreachable PREFECT_API_URL would end in Prefect's RuntimeError and traceback;
    say which setting is wrong instead. (Unset, Prefect starts a temporary server.)"""
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


def run_flow(flow_name: str, /, **parameters: Any) -> Any:
    """Run one of dagvault's flows in this process; its run lands in Prefect's history."""
    import flows.backup
    import flows.cleanup
    import flows.export
    import flows.fleet
    import flows.prune
    import flows.replicate
    import flows.restore
    import flows.scheduled
    import flows.verify
    from flows._prefect_server import use_temporary_server

    known = {
        "backup": flows.backup.backup_flow,
        "verify": flows.verify.verify_flow,
        "restore": flows.restore.restore_flow,
        "cleanup": flows.cleanup.cleanup_flow,
        "prune": flows.prune.prune_flow,
        "replicate": flows.replicate.replicate_flow,
        "schedule": flows.scheduled.scheduled_backup_flow,
        "export": flows.export.export_flow,
        "import-sql": flows.export.import_sql_flow,
        "fleet-backup": flows.fleet.fleet_backup_flow,
    }
    quiet_known_errors()
    use_temporary_server()
    require_reachable_api()
    return known[flow_name](**parameters)


def quiet_known_errors() -> None:
    """Drop the tracebacks of expected failures from the handlers Prefect has set up."""
    quiet = _NoTracebackForKnownErrors()
    loggers = [logging.getLogger()] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith(("prefect", "dagvault")) and isinstance(logger, logging.Logger)
    ]
    for handler in {h for logger in loggers for h in logger.handlers}:
        handler.addFilter(quiet)
