"""What every dagvault task shares: the retry policy and the bridge of core logs to Prefect."""

from __future__ import annotations

import logging
import re
from typing import Any

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

# Transient failures (a writer holding the lock, an I/O hiccup) get three more tries,
# backing off; integrity failures and bad input never do (retrying only hides them).
RETRIES = 3
RETRY_DELAYS = [2, 10, 30]


def is_retryable(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)  # type: ignore[assignment]
        except Exception:
            return False
    return bool(getattr(exc, "retryable", False))


def _bridge_core_logger() -> None:
    """Send the core's ``dagvault`` log events (📦 ✅ 🧹 ⚠️ ❌) to the run's Prefect log,
    as PREFECT_LOGGING_EXTRA_LOGGERS would, without depending on import order."""
    core = logging.getLogger("dagvault")
    core.setLevel(logging.INFO)
    for handler in logging.getLogger("prefect.extra").handlers:
        if handler not in core.handlers:
            core.addHandler(handler)


def task_options() -> dict[str, Any]:
    """Options of every dagvault task. No caching: a backup or verification must run each
    time it is asked for, even with the same inputs within one flow run."""
    return {
        "retries": RETRIES,
        "retry_delay_seconds": RETRY_DELAYS,
        "retry_condition_fn": is_retryable,
        "cache_policy": NO_CACHE,
        "persist_result": False,
    }


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


_bridge_core_logger()
