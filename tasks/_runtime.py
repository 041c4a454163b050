"""What every dagvault task shares: the retry policy and the bridge of core logs to Prefect."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
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


class _ToRunLog(logging.Handler):
    """Forward the core's ``dagvault`` log events (📦 ✅ 🧹 ⚠️ ❌) to the current flow or
    task run's log (console and API). Outside a run they are left to the application's
    own logging: Prefect's API handler would only warn that there is no run."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            get_run_context()
        except MissingContextError:
            return
        # The handlers PREFECT_LOGGING_EXTRA_LOGGERS would attach (console and API).
        for handler in logging.getLogger("prefect.extra").handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def _bridge_core_logger() -> None:
    core = logging.getLogger("dagvault")
    core.setLevel(logging.INFO)
    if not any(isinstance(h, _ToRunLog) for h in core.handlers):
        core.addHandler(_ToRunLog())


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
    """A stable key per operation and database: every run's artifact is a new version of it
    in the UI. Keys allow lowercase letters, digits and dashes only; a part that loses other
    letters than ASCII ones (``ledger_ü``) gets a short digest of itself, so that two
    ledgers whose names differ only there keep keys of their own."""
    slugs = []
    for part in parts:
        slug = re.sub(r"[^a-z0-9-]+", "-", part.lower()).strip("-")
        if not part.isascii():
            slug = f"{slug}-{hashlib.sha256(part.encode()).hexdigest()[:8]}".lstrip("-")
        slugs.append(slug)
    return "-".join(s for s in slugs if s)[:100]


_bridge_core_logger()
