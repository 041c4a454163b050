"""What the deployments take from the configuration when they are created.

``prefect deploy`` runs ``schedule_values`` as a build step (``{{ plan.* }}`` in
prefect.yaml) and ``serve.py`` calls it directly, so both read BACKUP_PRESET,
BACKUP_INTERVAL_HOURS, RPO_TARGET_SECONDS and DAGVAULT_CONFIG the same way. Only the
schedules and the watcher trigger's window are fixed at deploy time; every flow parameter
left empty is resolved on the node at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagvault.config import load_settings
from dagvault.watch import trigger_window

PROJECT_DIR = Path(__file__).resolve().parent.parent
PREFECT_FILE = Path(__file__).resolve().parent / "prefect.yaml"


def schedule_values(config_file: str | None = None) -> dict[str, Any]:
    settings = load_settings(config_file=config_file)
    return {
        "project_dir": str(PROJECT_DIR),
        "full_backup_hours": settings.interval_hours,
        # Hourly full backups (the critical preset) leave nothing for an incremental to add.
        "incremental_active": settings.interval_hours > 1,
        # Without backup.replicas / BACKUP_REPLICAS there is nothing to copy to.
        "replicate_active": bool(settings.replicas),
        "preset": settings.preset or "custom",
        # The watcher's trigger fires at most once per window (docs/continuous.md).
        "rpo_target_seconds": settings.rpo_target_seconds,
        "trigger_window_seconds": trigger_window(settings.rpo_target_seconds),
    }
