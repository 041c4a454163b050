"""The progress of a handed-over run (GET /progress/<ticket>): the steps of the request's
own run only, whichever thread of the run reports them, and nothing once it has ended; the
CLI asks for it only when it draws a bar."""

from __future__ import annotations

import contextvars
import threading

from dagvault import progress
from dagvault_api.models import ProgressData
from dagvault_api.routes import handoff

MINE, THEIRS = "a" * 32, "b" * 32


def _in_a_task_thread(stage: str, done: int, total: int) -> None:
    """Report as a run's task does: in another thread, with a copy of the run's context
    (as Prefect runs tasks)."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(progress.report, stage, done, total))
    thread.start()
    thread.join()


def test_a_request_sees_its_own_runs_steps_and_none_after_it_ends() -> None:
    with handoff._reporting_progress(MINE):
        assert handoff._steps.get(MINE) is None  # before the run's first step
        _in_a_task_thread("backup", 10, 40)
        with handoff._reporting_progress(THEIRS):  # another request's run, at the same time
            _in_a_task_thread("export", 1, 2)
        _in_a_task_thread("backup", 30, 40)
        assert handoff._steps[MINE] == ProgressData(stage="backup", done=30, total=40)
    assert MINE not in handoff._steps and THEIRS not in handoff._steps


def test_a_request_without_a_ticket_keeps_nothing() -> None:
    with handoff._reporting_progress(None):
        _in_a_task_thread("backup", 1, 2)
    assert handoff._steps == {}


def test_the_cli_asks_only_while_a_bar_listens() -> None:
    assert not progress.listened()
    with progress.listening(lambda stage, done, total: None):
        assert progress.listened()
    assert not progress.listened()
