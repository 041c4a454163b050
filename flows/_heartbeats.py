"""Flow-run heartbeats that stop the moment the run ends.

Prefect 3.x sends a flow run's heartbeats (what its crash detection watches) from a thread
that sleeps in one-second steps, and the run joins that thread on exit: every flow run ends
up to a second late, most of a handed-over ``cleanup --dry-run`` or ``verify`` (measured:
0.85 s of a 1.33 s no-op run; docs/performance.md). This version sends the same heartbeats,
with the same interval and event, but waits on the stop event itself, so the join returns
at once. ``install()`` swaps it in for ``prefect.flow_engine._send_heartbeats`` (the name
its sync and async engines call); a Prefect without that name keeps its own.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import prefect.flow_engine as flow_engine


@contextmanager
def send_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Prefect's ``_send_heartbeats`` (same signature, heartbeats and interval), without
    the up-to-a-second wait when the run ends."""
    seconds = engine.heartbeat_seconds
    if seconds is None:
        yield
        return
    seconds = max(seconds, flow_engine.MINIMUM_HEARTBEAT_INTERVAL)
    resource, related = engine._build_heartbeat_event_template()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            run = engine.flow_run
            if run and run.state and run.state.is_final():
                return
            try:
                engine._emit_flow_run_heartbeat(resource, related)
            except Exception:  # as Prefect's: a missed heartbeat is not worth a failed run
                engine.logger.debug("Failed to emit heartbeat", exc_info=True)
            stop.wait(seconds)

    # The run's context (settings, API URL) in the thread, as Prefect's version does.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if join_on_exit:
            thread.join(timeout=2)


def install() -> None:
    """Use ``send_heartbeats`` for this process's flow runs (idempotent)."""
    if hasattr(flow_engine, "_send_heartbeats"):
        flow_engine._send_heartbeats = send_heartbeats  # type: ignore[attr-defined]
