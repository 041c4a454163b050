"""Work an operation's answer need not wait for: what is only shown, never relied on
(the Data Docs pages of a quality gate, a run's artifacts in the Prefect UI).

In a command's own process there is nothing to answer early: ``later(job)`` runs the job at
once, as it always did. The node service (``dagvault up``'s API) calls ``start()``: jobs
then run in one worker thread, in the order they came, after the CLI has its result. The
result itself (backup, checksums, ``.meta``, the gate's verdict) is durable before it is
answered; only its display follows, usually within a second.

Bounded and never lost on a clean stop: at most QUEUE_LIMIT jobs wait (beyond that a job
runs in its caller, which slows that run instead of growing memory), and ``finish()``, which
the service calls when it stops (``dagvault down``), runs what is left within its timeout.
A job runs in a copy of its caller's context (Prefect's settings and run context). Its
failure is a warning in the log (the run's log, when it belongs to one), in a command's own
process too: what is only shown must not fail an operation whose work is done.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger("dagvault.afterwards")

# Jobs waiting at most: a run's artifacts are a handful, so this is hundreds of runs'.
QUEUE_LIMIT = 1000
# How long a stopping service waits for the jobs left (within `dagvault down`'s grace).
FINISH_SECONDS = 10.0

Job = Callable[[], object]


class _Worker:
    def __init__(self) -> None:
        self.jobs: queue.Queue[tuple[str, contextvars.Context, Job] | None] = queue.Queue(
            QUEUE_LIMIT
        )
        self.thread = threading.Thread(target=self._work, name="dagvault-afterwards", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (item := self.jobs.get()) is not None:
            what, context, job = item
            try:
                context.run(_run, what, job)
            finally:
                self.jobs.task_done()
        self.jobs.task_done()


def _run(what: str, job: Job) -> None:
    try:
        job()
    except Exception as exc:  # shown only: the operation it belongs to has succeeded
        log.warning("%s could not be published: %s", what, exc)


_worker: _Worker | None = None
_lock = threading.Lock()


def later(what: str, job: Job) -> None:
    """Run ``job`` (``what`` names it in a warning) after the answer when this process
    answers early (``start()``), else now."""
    worker = _worker
    if worker is not None:
        try:
            worker.jobs.put_nowait((what, contextvars.copy_context(), job))
            return
        except queue.Full:
            pass  # the worker is behind: this run waits for its own display instead
    _run(what, job)


def start() -> None:
    """Answer early from now on: ``later``'s jobs go to one worker thread (idempotent)."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = _Worker()


def finish(timeout: float = FINISH_SECONDS) -> int:
    """Run the jobs left, waiting at most ``timeout`` seconds; from now on ``later`` runs
    jobs at once. Returns how many were left unfinished (0 on a clean stop)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is None:
        return 0
    deadline = time.monotonic() + timeout
    with contextlib.suppress(queue.Full):
        worker.jobs.put(None, timeout=timeout)  # after every job queued before
    worker.thread.join(max(0.0, deadline - time.monotonic()))
    # What is still queued or running, the stop marker aside.
    left = max(0, worker.jobs.unfinished_tasks - 1) if worker.thread.is_alive() else 0
    if left:
        log.warning("%d job(s) of the run display were not finished in %.0f s", left, timeout)
    return left


def settle(timeout: float) -> bool:
    """Wait until the jobs queued so far have run (a Data Docs page about to be served);
    False if ``timeout`` passed first."""
    worker = _worker
    if worker is None:
        return True
    done = threading.Event()
    try:
        worker.jobs.put(("", contextvars.copy_context(), done.set), timeout=timeout)
    except queue.Full:
        return False
    return done.wait(timeout)
