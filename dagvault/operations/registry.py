"""Every operation that runs as a flow (`flows.launcher.run_operation`'s names), with its
options model and its result model: what a client needs to send an operation anywhere and
rebuild its typed result from the JSON document (``result.model_validate(data)``); and
which of them the node service runs for the CLI (``HANDED_OVER``: the CLI's
dagvault_cli/handoff.py and the API's dagvault_api/routes/handoff.py both read it)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from dagvault.operations.backup import BackupOptions, BackupResult
from dagvault.operations.common import Options
from dagvault.operations.drill import DrillOptions, DrillResult
from dagvault.operations.export import ExportOptions, ExportResult
from dagvault.operations.fleet import FleetOptions, FleetResult
from dagvault.operations.replicate import ReplicateOptions, ReplicateResult
from dagvault.operations.report import ReportOptions, ReportResult
from dagvault.operations.restore import ImportOptions, ImportResult, RestoreOptions, RestoreResult
from dagvault.operations.retention import CleanupOptions, PruneOptions, RetentionResult
from dagvault.operations.schedule import ScheduleOptions, ScheduleResult
from dagvault.operations.verify import VerifyOptions, VerifyResult


@dataclass(frozen=True)
class Operation:
    options: type[Options]
    result: type[BaseModel]  # a Result, or a RootModel where the document is a list
    # Run by the node service while `dagvault up` runs (docs/service.md); the others
    # (schedule, replicate, fleet backups…) always run in the command's own process.
    handed_over: bool = False


OPERATIONS: dict[str, Operation] = {
    "backup": Operation(BackupOptions, BackupResult, handed_over=True),
    "verify": Operation(VerifyOptions, VerifyResult, handed_over=True),
    "restore": Operation(RestoreOptions, RestoreResult, handed_over=True),
    "export": Operation(ExportOptions, ExportResult, handed_over=True),
    "import-sql": Operation(ImportOptions, ImportResult, handed_over=True),
    "cleanup": Operation(CleanupOptions, RetentionResult, handed_over=True),
    "prune": Operation(PruneOptions, RetentionResult, handed_over=True),
    "schedule": Operation(ScheduleOptions, ScheduleResult),
    "replicate": Operation(ReplicateOptions, ReplicateResult),
    "fleet-backup": Operation(FleetOptions, FleetResult),
    "drill": Operation(DrillOptions, DrillResult),
    "report": Operation(ReportOptions, ReportResult),
}

HANDED_OVER = frozenset(name for name, operation in OPERATIONS.items() if operation.handed_over)
