"""Running a flow from the command line (imports Prefect only when a flow runs)."""

from __future__ import annotations

import logging
from typing import Any

from dagvault.errors import DagvaultError


class _NoTracebackForKnownErrors(logging.Filter):
    """Expected failures (bad backup, lock held, disk full) are reported by the CLI as
    'Error: … / Try: …'; Prefect's traceback of them would only bury that message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DagvaultError):
            record.exc_info = None
            record.exc_text = None
        return True


def run_flow(flow_name: str, /, **parameters: Any) -> Any:
    """Run one of dagvault's flows in this process; its run lands in Prefect's history."""
    import flows.backup
    import flows.cleanup
    import flows.export
    import flows.restore
    import flows.scheduled
    import flows.verify

    known = {
        "backup": flows.backup.backup_flow,
        "verify": flows.verify.verify_flow,
        "restore": flows.restore.restore_flow,
        "cleanup": flows.cleanup.cleanup_flow,
        "schedule": flows.scheduled.scheduled_backup_flow,
        "export": flows.export.export_flow,
        "import-sql": flows.export.import_sql_flow,
    }
    quiet = _NoTracebackForKnownErrors()
    loggers = [logging.getLogger()] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith(("prefect", "dagvault")) and isinstance(logger, logging.Logger)
    ]
    for handler in {h for logger in loggers for h in logger.handlers}:
        handler.addFilter(quiet)
    return known[flow_name](**parameters)
