"""Running an operation as a Prefect flow run, and turning its failures into HTTP answers.

Each request's flow runs in a worker thread of the server (FastAPI runs plain ``def``
endpoints in a thread pool), so a long backup never blocks /health or /metrics, and it
lands in Prefect's run history tagged ``dagvault-api``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class FlowRun:
    """A flow's result with the id of the run that produced it."""

    def __init__(self, result: Any, flow_run_id: str | None) -> None:
        self.result = result
        self.flow_run_id = flow_run_id


class FlowRunFailed(Exception):
    """A failed flow run: the original error and the run's id (for the audit log)."""

    def __init__(self, error: BaseException, flow_run_id: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.flow_run_id = flow_run_id


def run_flow(flow: Callable[..., Any], **parameters: Any) -> FlowRun:
    from prefect import tags

    with tags("dagvault-api"):
        state = flow(**parameters, return_state=True)
    run_id = state.state_details.flow_run_id
    run_id = str(run_id) if run_id else None
    try:
        return FlowRun(state.result(), run_id)
    except Exception as exc:
        raise FlowRunFailed(exc, run_id) from exc


class Scrubber:
    """Replaces absolute spellings of the configured paths by their configured form, so an
    error message never shows more of the server's filesystem than its settings do."""

    def __init__(self, base: Path, configured: Iterable[Path]) -> None:
        pairs: dict[str, str] = {}
        for path in configured:
            for spelling in {str(base / path), str((base / path).resolve())}:
                if spelling != str(path):
                    pairs[spelling] = str(path)
        pairs[str(base) + "/"] = ""
        # Longest first: /srv/node/backups before /srv/node/.
        self._pairs = sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)

    def __call__(self, text: str) -> str:
        for absolute, shown in self._pairs:
            text = text.replace(absolute, shown)
        return text
