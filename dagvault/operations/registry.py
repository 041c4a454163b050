"""Every operation that runs as a flow (`flows.launcher.run_operation`'s names), with its
options model and its result model: what a client needs to send an operation anywhere and
rebuild its typed result from the JSON document (``result.model_validate(data)``)."""

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


OPERATIONS: dict[str, Operation] = {
    "backup": Operation(BackupOptions, BackupResult),
    "verify": Operation(VerifyOptions, VerifyResult),
    "restore": Operation(RestoreOptions, RestoreResult),
    "export": Operation(ExportOptions, ExportResult),
    "import-sql": Operation(ImportOptions, ImportResult),
    "cleanup": Operation(CleanupOptions, RetentionResult),
    "prune": Operation(PruneOptions, RetentionResult),
    "schedule": Operation(ScheduleOptions, ScheduleResult),
    "replicate": Operation(ReplicateOptions, ReplicateResult),
    "fleet-backup": Operation(FleetOptions, FleetResult),
    "drill": Operation(DrillOptions, DrillResult),
    "report": Operation(ReportOptions, ReportResult),
}
