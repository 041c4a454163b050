from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.states import Completed, State

from dagvault.resources import ResourceLimits, busy_reasons, wait_for_resources
from tasks._runtime import task_options


@task(name="wait-for-resources", **task_options())
def wait_for_resources_task(backup_dir: str, limits: ResourceLimits, deadline: float) -> State:
    """Defer the backup while BACKUP_DIR's disk is short of space or the machine is busy,
    until ``deadline`` (unix seconds) at most. The task run's state message says whether
    and why it waited; the flow's result carries the same."""
    deferral = wait_for_resources(lambda: busy_reasons(Path(backup_dir), limits), deadline)
    return Completed(
        message=deferral.message,
        data={
            "seconds": round(deferral.waited_seconds, 1),
            "reasons": list(deferral.reasons),
            "ran_anyway": deferral.gave_up,
        },
    )
