"""Resource-aware scheduling: a due backup waits while the machine cannot spare it.

A backup that a deployment runs (scheduled or triggered) first looks at the free space of
the file system holding BACKUP_DIR and at the 1-minute load average per core. Below
BACKUP_MIN_FREE_MB, or above BACKUP_MAX_LOAD_PER_CPU, it waits and looks again, saying
why, but never longer than RPO_TARGET_SECONDS + BACKUP_DEFER_GRACE_SECONDS after it was
due: then it runs anyway, because a missing recovery point is worse than a slow node.
A backup typed by hand never waits (docs/continuous.md).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagvault.config import Settings

# How often a deferred backup looks at the machine again.
RECHECK_SECONDS = 5.0
log = logging.getLogger("dagvault")


@dataclass(frozen=True)
class ResourceLimits:
    min_free_bytes: int
    max_load_per_cpu: float  # 0: the load never holds a backup back

    @classmethod
    def of(cls, settings: Settings) -> ResourceLimits:
        return cls(settings.min_free_mb * 2**20, settings.max_load_per_cpu)


@dataclass(frozen=True)
class Deferral:
    """How long a backup waited and why (empty reasons: it did not wait)."""

    waited_seconds: float
    reasons: tuple[str, ...]
    gave_up: bool  # the bound was reached while the machine was still busy

    @property
    def message(self) -> str:
        if not self.reasons:
            return "ran at once: enough free disk space and the load is below the limit"
        verdict = "ran anyway at the bound" if self.gave_up else "ran when resources allowed"
        return f"deferred {self.waited_seconds:.0f} s ({'; '.join(self.reasons)}); {verdict}"


def _existing(path: Path) -> Path:
    """The nearest existing directory of ``path`` (BACKUP_DIR may not exist yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def busy_reasons(backup_dir: Path, limits: ResourceLimits) -> list[str]:
    """Why a backup should wait now; empty when it may run."""
    reasons = []
    free = shutil.disk_usage(_existing(backup_dir)).free
    if free < limits.min_free_bytes:
        reasons.append(
            f"{free // 2**20} MB free in {backup_dir}, below BACKUP_MIN_FREE_MB "
            f"{limits.min_free_bytes // 2**20}"
        )
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    if limits.max_load_per_cpu and load > limits.max_load_per_cpu:
        reasons.append(
            f"load {load:.2f} per core, above BACKUP_MAX_LOAD_PER_CPU {limits.max_load_per_cpu:g}"
        )
    return reasons


def wait_for_resources(
    check: Callable[[], list[str]],
    deadline: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Deferral:
    """Look with ``check`` until it finds nothing or ``clock()`` reaches ``deadline``
    (both wall-clock seconds: the deadline comes from the run's due time), logging why
    the backup waits."""
    start = clock()
    last: list[str] = []  # the reasons of the last wait: what held the backup back
    while reasons := check():
        left = deadline - clock()
        if left <= 0:
            log.warning(
                "⚠️  Backup deferred as long as RPO_TARGET_SECONDS + BACKUP_DEFER_GRACE_SECONDS "
                "allow; running it anyway: %s",
                "; ".join(reasons),
            )
            return Deferral(clock() - start, tuple(reasons), gave_up=True)
        log.warning(
            "⏸️  Backup deferred: %s; looking again in %.0f s, running anyway in %.0f s",
            "; ".join(reasons),
            min(RECHECK_SECONDS, left),
            left,
        )
        last = reasons
        sleep(min(RECHECK_SECONDS, left))
    return Deferral(clock() - start, tuple(last), gave_up=False)
